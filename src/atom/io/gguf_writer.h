// Writes a GGUF v3 file holding metadata only (no tensors). Atom checkpoints made from a GGUF
// model carry its tokenizer this way (tokenizer.gguf: every tokenizer.* key of the source).
#pragma once
#include <map>
#include <string>

#include "atom/io/gguf.h"

namespace atom::io {

// Integers are written as INT64 (UINT64 for uint64_t values), floats as FLOAT32 for arrays
// (token scores) and FLOAT64 for scalars; the reader accepts any integer/float width.
void write_gguf_metadata(const std::string& path, const std::map<std::string, GgufValue>& kv);

}  // namespace atom::io
