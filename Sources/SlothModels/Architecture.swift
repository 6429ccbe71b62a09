/// The supported HF `model_type`s and what distinguishes each (one case and one registry line per architecture).
public enum Architecture: String, CaseIterable, Sendable {
    case llama, mistral, qwen2, gemma

    /// RMSNorm scales by (1 + w) (Gemma) instead of w.
    public var normOffset: Float { self == .gemma ? 1 : 0 }
    /// Embeddings are multiplied by sqrt(hidden_size) (Gemma; the scale is rounded to the weights' dtype in HF).
    public var scalesEmbeddings: Bool { self == .gemma }
    /// q/k/v projections carry a bias regardless of `attention_bias` (Qwen 2).
    public var alwaysQKVBias: Bool { self == .qwen2 }
    /// Default for `tie_word_embeddings` when config.json omits it.
    public var defaultTiedEmbeddings: Bool { self == .gemma }
    /// Default hidden activation when config.json omits it.
    public var defaultActivation: String { self == .gemma ? "gelu_pytorch_tanh" : "silu" }
    /// Default RMSNorm epsilon when config.json omits it.
    public var defaultNormEps: Double { self == .llama ? 1e-6 : 1e-6 }
}
