// Tokenizer interface shared by the HF byte-level BPE (tokenizer.json / GGUF "gpt2"), the
// llama SentencePiece-style BPE embedded in GGUF ("llama"), and libsentencepiece (.model).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace atom::io { class GgufFile; }

namespace atom {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes text. Special/added tokens written literally in `text` (e.g. "<|im_start|>") are
  // recognised as single tokens when parse_special is true. add_bos = true prepends BOS (when
  // the model has one); pass add_bos_default() to follow the tokenizer config (add_bos_token /
  // the BOS of tokenizer.json's post-processor), as HF's add_special_tokens=True does. Text
  // formatted by apply_chat_template already contains the BOS text: encode it with add_bos =
  // false, as transformers does. Invalid UTF-8 in `text` is encoded as U+FFFD.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos = false,
                                      bool parse_special = true) const = 0;
  // Raw bytes of one token as it contributes to decoded text (byte-level tokens -> bytes,
  // SPM "▁" -> space, <0xAB> byte tokens -> the byte). Special tokens -> their text.
  virtual std::string token_bytes(int32_t id) const = 0;
  // The vocabulary string of a token (as in the vocab file).
  virtual std::string token_text(int32_t id) const = 0;
  virtual int32_t token_id(std::string_view text) const = 0;  // -1 if absent
  virtual int32_t vocab_size() const = 0;
  virtual bool is_special(int32_t id) const = 0;

  // Decodes ids to text (concatenated token bytes; SPM strips the leading space of the first
  // token when the model adds a prefix space). skip_special drops special tokens. Invalid UTF-8
  // (a sequence cut off between tokens) comes out as U+FFFD, as in HF.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const;

  int32_t bos_id() const { return bos_id_; }
  int32_t eos_id() const { return eos_id_; }
  bool add_bos_default() const { return add_bos_; }
  // Ids that end generation: eos plus end-of-turn tokens (<|im_end|>, <|eot_id|>, ...).
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  // The chat template (Jinja source) shipped with the model, may be empty.
  const std::string& chat_template() const { return chat_template_; }

  // Formats a conversation with the model's chat template family (ChatML/SmolLM2, Llama-3,
  // Llama-2 [INST]); add_generation_prompt opens the assistant turn.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;

 protected:
  // Fills stop_ids_ from eos_id_ and the end-of-turn tokens present in the vocabulary; called
  // by each implementation once its vocabulary is in place.
  void init_stop_ids(const std::vector<int32_t>& extra = {});

  int32_t bos_id_ = -1, eos_id_ = -1;
  bool add_bos_ = false;
  // SentencePiece-style models prefix the text with a space; decoding drops it again.
  bool strip_leading_space_ = false;
  std::vector<int32_t> stop_ids_;
  std::string chat_template_;

  friend class StreamDecoder;
};

// Incremental detokenizer for streaming: feed ids, get back only complete UTF-8 text.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = true)
      : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);  // new printable text (may be empty)
  std::string flush();           // whatever is left (invalid bytes replaced by U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
  bool first_ = true;
};

// Loaders. Each throws atom::Error naming the file and what is wrong.
std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path,
                                               const std::string& tokenizer_config_path = "");
std::unique_ptr<Tokenizer> parse_tokenizer_json(const std::string& json_text,
                                                const std::string& tokenizer_config_text = "",
                                                const std::string& source = "tokenizer.json");
std::unique_ptr<Tokenizer> load_tokenizer_gguf(const io::GgufFile& gguf);
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path);
// A model directory (tokenizer.json [+ tokenizer_config.json], or tokenizer.model) or a .gguf.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_path);

}  // namespace atom
