import Foundation
import SlothCore
import SlothModels

/// Tokens whose embedding was never trained (a base model's reserved or added tokens: rows of zeros, or tiny
/// values), as Unsloth's `fix_untrained_tokens` finds them: the largest value of the embedding row (or, untied, the
/// lm_head row) is <= 1e-16. Training on them from such rows gives NaNs or a model that cannot produce them; Unsloth
/// sets the rows the data uses to the mean of the trained rows. That changes the weights, so Sloth does it only when
/// they are trained (and saved): otherwise it is a clear error.
public enum UntrainedTokens {
    /// The untrained ids among `used`, sorted.
    public static func find(_ model: LanguageModel, used: Set<Int>) -> [Int] {
        var bad = LanguageModel.untrainedRows(model.embedTokens)
        if !(model.lmHead === model.embedTokens) { bad.formUnion(LanguageModel.untrainedRows(model.lmHead)) }
        return bad.intersection(used).sorted()
    }

    /// Sets rows `ids` of embed_tokens (and lm_head) to the mean of their trained rows (fp64 sums).
    public static func fix(_ model: LanguageModel, ids: [Int]) {
        let tables = model.lmHead === model.embedTokens ? [model.embedTokens] : [model.embedTokens, model.lmHead]
        for t in tables {
            let d = t.shape[1], mean = LanguageModel.trainedRowMean(t)
            for r in ids { (t.data + r * d).update(from: mean, count: d) }
        }
    }

    /// Checks the token ids a run trains on: fixes untrained rows when embed_tokens and lm_head are trained, otherwise
    /// throws naming the ids and what to do. Returns the fixed ids.
    @discardableResult
    public static func check(_ model: LanguageModel, rows: [TokenizedRow], file: String) throws -> [Int] {
        var used = Set<Int>()
        for r in rows { for id in r.ids { used.insert(Int(id)) } }
        let bad = find(model, used: used)
        guard !bad.isEmpty else { return [] }
        let trained = model.isFullTraining || (model.embedGrad != nil && model.lmHeadGrad != nil)
        guard trained else {
            let shown = bad.prefix(8).map(String.init).joined(separator: ", ") + (bad.count > 8 ? " and \(bad.count - 8) more" : "")
            throw DatasetError(file: file, row: nil, message: "the data uses tokens whose embeddings were never trained (ids \(shown): their embed_tokens or lm_head rows are all <= 1e-16), so the model cannot learn them. Train the embeddings with --modules-to-save embed_tokens,lm_head (Sloth then sets those rows to the mean of the trained rows first), or remove these tokens from the data or the chat template.")
        }
        fix(model, ids: bad)
        return bad
    }
}
