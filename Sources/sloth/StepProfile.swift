import Foundation
import ArgumentParser
import Sloth

/// `sloth train --profile FILE`: where a step's time goes, against what the step must compute.
enum StepProfile {
    /// The GEMM rate at the step's shapes, timed now (between steps, with the profile paused), 0.1 s per shape.
    static func sampleRate(trainer: Trainer) -> BLAS.MeasuredRate? {
        guard let batch = trainer.engine.lastBatch else { return nil }
        let was = Profile.enabled
        Profile.enabled = false
        defer { Profile.enabled = was }
        let micro = trainer.params.gradientAccumulationSteps
        return BLAS.measuredRate(trainer.engine.stepCost(batch).gemms.map { ($0.shape, $0.count * micro) }, seconds: 0.1)
    }

    /// `rates`: the GEMM rate sampled after each step from the first on (so the samples bracket the profiled steps, and a
    /// host whose speed drifts during the run moves the limit with the steps); the limit uses their harmonic mean
    /// (total FLOPs over total time, the samples timing the same products).
    static func write(path: String, trainer: Trainer, stepSeconds: [Double], rates: [BLAS.MeasuredRate],
                      policy: CheckpointPolicy, progress: Progress) throws {
        guard !stepSeconds.isEmpty, let batch = trainer.engine.lastBatch, let last = rates.last else {
            progress.header("--profile: no steps after the first were run (pass --max-steps 2 or more); nothing written")
            return
        }
        let steps = Double(stepSeconds.count)
        let step = stepSeconds.reduce(0, +) / steps
        var cost = trainer.engine.stepCost(batch)
        let micro = trainer.params.gradientAccumulationSteps
        cost.parts = cost.parts.map { ($0.name, $0.flops * Double(micro)) }
        let samples = rates.map(\.flopsPerSecond)
        let rate = (flopsPerSecond: Double(samples.count) / samples.reduce(0) { $0 + 1 / $1 }, perShape: last.perShape)
        let required = cost.requiredFLOPs, limit = required / rate.flopsPerSecond
        var rows: [[String: Any]] = []
        var table = ["| kernel family | s / step | share | GFLOP / step | GFLOP/s |", "|---|---:|---:|---:|---:|"]
        var accounted = 0.0
        for f in Profile.Family.allCases {
            let e = Profile.entries[f.rawValue]
            guard e.calls > 0 else { continue }
            let s = e.seconds / steps, g = e.flops / steps / 1e9
            accounted += s
            rows.append(["family": f.name, "seconds_per_step": s, "gflop_per_step": g, "calls_per_step": Double(e.calls) / steps])
            table.append(String(format: "| %@ | %.3f | %.1f%% | %@ | %@ |", f.name, s, 100 * s / step, g > 0 ? String(format: "%.1f", g) : "",
                                g > 0 ? String(format: "%.0f", g / s) : ""))
        }
        let other = max(0, step - accounted)
        table.append(String(format: "| other (copies, tables, loop) | %.3f | %.1f%% | | |", other, 100 * other / step))
        table.append(String(format: "| **step** | **%.3f** | | | |", step))
        var lines = ["profile of \(stepSeconds.count) step(s) after the first, \(batch.batch) x \(batch.tokens) tokens, policy \(policy.rawValue), "
                     + "\(Parallel.threads) threads, BLAS \(BLAS.library.description)\(BLAS.library.chosenCore != nil ? " (kernel chosen by Sloth)" : "")"]
        lines += table
        lines.append("required work per step:")
        for p in cost.parts { lines.append(String(format: "  %@: %.1f GFLOP", p.name, p.flops / 1e9)) }
        lines.append(String(format: "  total %.1f GFLOP; GEMM rate at the step's shapes %.1f GFLOP/s (%d samples between steps, %.1f-%.1f) -> limit %.3f s; step / limit %.2f",
                            required / 1e9, rate.flopsPerSecond / 1e9, samples.count, samples.min()! / 1e9, samples.max()! / 1e9, limit, step / limit))
        for l in lines { progress.header(l) }
        let doc: [String: Any] = [
            "tokens": batch.batch * batch.tokens * micro, "batch": batch.batch, "sequence_length": batch.tokens, "policy": policy.rawValue,
            "threads": Parallel.threads, "blas": BLAS.library.description, "steps_profiled": stepSeconds.count,
            "step_seconds": step, "families": rows, "other_seconds": other,
            "required_flops": required, "required_parts": cost.parts.map { ["name": $0.name, "flops": $0.flops] },
            "gemm_rate_flops_per_second": rate.flopsPerSecond, "gemm_rate_samples": samples,
            "gemm_rates": rate.perShape.map { ["shape": $0.0.key, "flops_per_second": $0.1] },
            "limit_seconds": limit, "step_over_limit": step / limit,
        ]
        let data = try JSONSerialization.data(withJSONObject: doc, options: [.prettyPrinted, .sortedKeys])
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else { throw ValidationError("--profile: cannot write \(path): \(String(cString: strerror(errno)))") }
    }
}
