"""Independent KV-cache fake quantization for transformers' Llama (used by ref_ppl.py --kv-bits).

Written from the Atom paper's description, sharing no code with Atom's C++: every K (after RoPE) and
V vector of one token and one KV head is quantized asymmetrically to `bits` bits over its head_dim
values with one (scale, zero) pair, then dequantized:
    scale = (max - min) / (2^bits - 1),  zero = round(-min / scale),
    q = clamp(round(x / scale) + zero, 0, 2^bits - 1),  x_hat = (q - zero) * scale     (fp32)
This is what a kernel reading an INT4/INT8 cache sees; the current token's own K/V go through it too
(Atom's engine reads them back from the cache). Atom's C++ format (docs/quant-format.md §4) differs
only in storing the scale as fp16 and widening [min, max] to contain 0; the two agree to rounding on
mixed-sign heads, so the ppl cost measured here is an outside check of `atom ppl --kv-bits 4`.
"""
import torch


def fake_quant_rows(x, bits):
    """x [..., head_dim] -> the same shape, each last-axis row through the asymmetric format."""
    qmax = float(2 ** bits - 1)
    lo = x.amin(dim=-1, keepdim=True)
    hi = x.amax(dim=-1, keepdim=True)
    scale = (hi - lo) / qmax
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / safe)
    q = torch.clamp(torch.round(x / safe) + zero, 0.0, qmax)
    return torch.where(scale > 0, (q - zero) * safe, torch.zeros_like(x))


def install(model, bits):
    """Patches `model` (a transformers LlamaForCausalLM) so that attention sees fake-quantized K and V.
    K: wraps modeling_llama.apply_rotary_pos_emb (K is quantized after RoPE, as Atom's default);
    V: a forward hook on every v_proj. Returns a function that undoes both."""
    import transformers.models.llama.modeling_llama as ml

    original_rope = ml.apply_rotary_pos_emb

    def rope_then_quant(q, k, *args, **kwargs):
        q2, k2 = original_rope(q, k, *args, **kwargs)
        return q2, fake_quant_rows(k2, bits)  # k2 [batch, kv_heads, seq, head_dim]

    ml.apply_rotary_pos_emb = rope_then_quant
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    head_dim = getattr(model.config, "head_dim", None) or head_dim

    def v_hook(_module, _inputs, out):  # out [batch, seq, kv_heads * head_dim]
        shape = out.shape
        return fake_quant_rows(out.reshape(*shape[:-1], shape[-1] // head_dim, head_dim), bits).reshape(shape)

    handles = [layer.self_attn.v_proj.register_forward_hook(v_hook) for layer in model.model.layers]

    def undo():
        ml.apply_rotary_pos_emb = original_rope
        for h in handles:
            h.remove()

    return undo
