// Tokenizer::apply_chat_template. Atom does not run Jinja: it recognises the template family
// from the model's template source and reproduces that family's output exactly.
//
// Supported families (checked against transformers' rendering of the real templates by
// tools/reference/check_tokenizer.py):
//
//  * ChatML — the template contains "<|im_start|>", or the model ships no template:
//      for each message:  "<|im_start|>" role "\n" content "<|im_end|>\n"
//      generation prompt: "<|im_start|>assistant\n"
//    When the template hard-codes a default system turn for conversations that do not start
//    with a system message (SmolLM2: "<|im_start|>system\nYou are a helpful AI assistant named
//    SmolLM, trained by Hugging Face<|im_end|>\n"), that text is read out of the template and
//    inserted the same way.
//  * Llama-3 — the template contains "<|start_header_id|>" (the Llama-3.0 format):
//      BOS, then for each message:
//        "<|start_header_id|>" role "<|end_header_id|>\n\n" trim(content) "<|eot_id|>"
//      generation prompt: "<|start_header_id|>assistant<|end_header_id|>\n\n"
//    (Llama-3.1's date / tools system header is not reproduced.)
//  * Llama-2 — the template contains "[INST]":
//      a leading system message is folded into the first user turn as
//      "<<SYS>>\n" system "\n<</SYS>>\n\n" user;
//      user:      BOS "[INST] " strip(content) " [/INST]"
//      assistant: " " strip(content) " " EOS
//      roles (after the system message) must alternate user/assistant/... (atom::Error
//      otherwise); the template has no generation prompt, so add_generation_prompt is ignored.
//
// Any other template falls back to ChatML with a warning. trim/strip remove Python's
// whitespace characters, as Jinja's filters do.
#include <spdlog/spdlog.h>

#include <mutex>

#include "atom/core/error.h"
#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"

namespace atom {
namespace {

// Python str.isspace() (what Jinja's trim and str.strip() remove).
bool py_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
         cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

std::string py_strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    const size_t l = tok::utf8_char_len(static_cast<unsigned char>(s[b]));
    if (!py_space(tok::utf8_decode(s, b))) break;
    b += l;
  }
  while (e > b) {
    size_t p = e - 1;
    while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    if (!py_space(tok::utf8_decode(s, p))) break;
    e = p;
  }
  return s.substr(b, e - b);
}

// The default system text hard-coded after "<|im_start|>system\n" in a ChatML template, or "".
// Only a plain string literal counts (no quotes, no Jinja expressions inside).
std::string chatml_default_system(const std::string& t) {
  const std::string head = "<|im_start|>system";
  for (size_t p = t.find(head); p != std::string::npos; p = t.find(head, p + 1)) {
    size_t q = p + head.size();
    if (t.compare(q, 1, "\n") == 0) q += 1;
    else if (t.compare(q, 2, "\\n") == 0) q += 2;
    else continue;
    const size_t e = t.find("<|im_end|>", q);
    if (e == std::string::npos) return "";
    const std::string body = t.substr(q, e - q);
    if (body.find_first_of("'\"{}") != std::string::npos || body.empty()) continue;
    std::string out;  // undo Jinja string-literal escapes
    for (size_t i = 0; i < body.size(); ++i) {
      if (body[i] == '\\' && i + 1 < body.size()) {
        const char c = body[++i];
        out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
      } else {
        out += body[i];
      }
    }
    return out;
  }
  return "";
}

}  // namespace

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  const std::string& t = chat_template_;
  const std::string bos = bos_id_ >= 0 ? token_text(bos_id_) : "";
  const std::string eos = eos_id_ >= 0 ? token_text(eos_id_) : "";
  std::string out;

  if (!t.empty() && t.find("<|im_start|>") == std::string::npos) {
    if (t.find("<|start_header_id|>") != std::string::npos) {  // Llama-3
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0) out += bos;
        out.append("<|start_header_id|>").append(messages[i].role).append("<|end_header_id|>\n\n");
        out.append(py_strip(messages[i].content)).append("<|eot_id|>");
      }
      if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    if (t.find("[INST]") != std::string::npos) {  // Llama-2
      size_t start = 0;
      bool has_system = false;
      std::string system;
      if (!messages.empty() && messages[0].role == "system") {
        has_system = true;
        system = messages[0].content;
        start = 1;
      }
      for (size_t i = start; i < messages.size(); ++i) {
        const size_t k = i - start;
        const auto& m = messages[i];
        if ((m.role == "user") != (k % 2 == 0))
          fail("chat template: conversation roles must alternate user/assistant/user/assistant/...");
        std::string content = m.content;
        if (k == 0 && has_system) content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        if (m.role == "user")
          out.append(bos).append("[INST] ").append(py_strip(content)).append(" [/INST]");
        else if (m.role == "assistant")
          out.append(" ").append(py_strip(content)).append(" ").append(eos);
      }
      return out;
    }
    static std::once_flag warned;
    std::call_once(warned, [] {
      spdlog::warn("unrecognised chat template family; formatting conversations as ChatML");
    });
  }

  // ChatML (also the default with no template).
  const std::string default_system = chatml_default_system(t);
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i == 0 && !default_system.empty() && messages[0].role != "system")
      out.append("<|im_start|>system\n").append(default_system).append("<|im_end|>\n");
    out.append("<|im_start|>").append(messages[i].role).append("\n");
    out.append(messages[i].content).append("<|im_end|>\n");
  }
  if (add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

}  // namespace atom
