import Foundation
import SlothCore
import SlothModels

/// What a training run leaves beside its adapter (`run.json`): the resolved configuration, the memory plan,
/// the environment, and where the metrics are. `sloth report` draws `report.html` from it.
public struct RunRecord {
    public var configuration: [(name: String, value: String)]
    public var plan: MemoryPlan
    public var policy: String
    public var metricsFile: String
    public var bestCheckpoint: String?
    public var bestEvalLoss: Double?
    public var finished = false
    public var environment: [(name: String, value: String)] = RunRecord.currentEnvironment()
    public var started = ISO8601DateFormatter().string(from: Date())

    public init(configuration: [(name: String, value: String)], plan: MemoryPlan, policy: String, metricsFile: String) {
        self.configuration = configuration; self.plan = plan; self.policy = policy; self.metricsFile = metricsFile
    }

    /// OS, kernel, CPU, cores, memory: what a reader needs to compare runs.
    public static func currentEnvironment() -> [(name: String, value: String)] {
        var env: [(String, String)] = []
        if let os = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = os.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            env.append(("os", line.dropFirst("PRETTY_NAME=".count).trimmingCharacters(in: CharacterSet(charactersIn: "\""))))
        }
        var u = utsname()
        if uname(&u) == 0 {
            let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let machine = withUnsafeBytes(of: &u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            env.append(("kernel", "\(release) \(machine)"))
        }
        if let cpu = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
           let line = cpu.split(separator: "\n").first(where: { $0.hasPrefix("model name") }), let v = line.split(separator: ":", maxSplits: 1).last {
            env.append(("cpu", v.trimmingCharacters(in: .whitespaces)))
        }
        env.append(("cores", "\(ProcessInfo.processInfo.activeProcessorCount)"))
        env.append(("threads", "\(Parallel.threads)"))
        env.append(("memory", ByteCount.format(Int(ProcessInfo.processInfo.physicalMemory))))
        env.append(("blas", "OpenBLAS"))
        return env
    }

    public func write(to folder: URL) throws {
        func pairs(_ p: [(name: String, value: String)]) -> [[String]] { p.map { [$0.name, $0.value] } }
        var d: [String: Any] = [
            "configuration": pairs(configuration), "environment": pairs(environment), "policy": policy,
            "metrics_file": metricsFile, "finished": finished, "started": started,
            "memory_plan": ["peak_bytes": plan.peakBytes, "loading_peak_bytes": plan.loadingPeakBytes, "tokens": plan.tokens, "batch": plan.batch,
                            "parts": plan.parts.map { ["name": $0.name, "bytes": $0.bytes, "resident": $0.resident] as [String: Any] }] as [String: Any],
        ]
        if let b = bestCheckpoint { d["best_checkpoint"] = b }
        if let e = bestEvalLoss { d["best_eval_loss"] = e }
        let data = try JSONSerialization.data(withJSONObject: d, options: [.prettyPrinted, .sortedKeys])
        try writeAtomically(data + Data("\n".utf8), to: folder.appendingPathComponent("run.json"))
    }

    /// Reads `run.json` of a training output folder.
    public static func read(folder: URL) throws -> RunRecord {
        let url = folder.appendingPathComponent("run.json")
        guard let data = FileManager.default.contents(atPath: url.path),
              let d = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelError.fileMissing(path: url.path, hint: "sloth report reads the output folder of sloth train (run.json, metrics.jsonl).")
        }
        func pairs(_ k: String) -> [(name: String, value: String)] {
            ((d[k] as? [[Any]]) ?? []).compactMap { $0.count == 2 ? ("\($0[0])", "\($0[1])") : nil }
        }
        let mp = d["memory_plan"] as? [String: Any] ?? [:]
        let parts = (mp["parts"] as? [[String: Any]] ?? []).map {
            MemoryPlan.Part(name: $0["name"] as? String ?? "?", bytes: ($0["bytes"] as? NSNumber)?.intValue ?? 0, resident: ($0["resident"] as? NSNumber)?.boolValue ?? true)
        }
        let plan = MemoryPlan(policy: d["policy"] as? String ?? "?", batch: (mp["batch"] as? NSNumber)?.intValue ?? 1,
                              tokens: (mp["tokens"] as? NSNumber)?.intValue ?? 0, parts: parts,
                              loadingPeakBytes: (mp["loading_peak_bytes"] as? NSNumber)?.intValue ?? 0)
        var r = RunRecord(configuration: pairs("configuration"), plan: plan, policy: d["policy"] as? String ?? "?",
                          metricsFile: d["metrics_file"] as? String ?? folder.appendingPathComponent("metrics.jsonl").path)
        r.environment = pairs("environment")
        r.bestCheckpoint = d["best_checkpoint"] as? String
        r.bestEvalLoss = (d["best_eval_loss"] as? NSNumber)?.doubleValue
        r.finished = (d["finished"] as? NSNumber)?.boolValue ?? false
        r.started = d["started"] as? String ?? ""
        return r
    }
}

/// `report.html`: one self-contained page (inline CSS and SVG, no script, no external assets) with the run's
/// curves, its memory plan and its configuration.
public enum TrainingReport {
    /// Reads `folder`'s run.json and metrics, writes `folder/report.html` (atomically) and returns its URL.
    @discardableResult
    public static func write(folder: URL) throws -> URL {
        let run = try RunRecord.read(folder: folder)
        var metricsURL = URL(fileURLWithPath: run.metricsFile)
        if !FileManager.default.fileExists(atPath: metricsURL.path) { metricsURL = folder.appendingPathComponent("metrics.jsonl") }
        let text = (try? String(contentsOf: metricsURL, encoding: .utf8)) ?? ""
        let dec = JSONDecoder()
        let rows = text.split(separator: "\n").compactMap { try? dec.decode(StepMetrics.self, from: Data($0.utf8)) }
        let url = folder.appendingPathComponent("report.html")
        try writeAtomically(Data(html(run: run, metrics: rows, title: folder.lastPathComponent).utf8), to: url)
        return url
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A number with 3 significant digits (or an integer).
    static func short(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e4 || a < 1e-3 { return String(format: "%.2e", v) }
        if a >= 100 { return String(format: "%.0f", v) }
        if a >= 10 { return String(format: "%.1f", v) }
        return String(format: "%.3g", v)
    }

    /// A line chart: series of (x, y) points over a shared x axis, with min/max ticks.
    static func chart(_ title: String, _ series: [(name: String, color: String, points: [(Double, Double)], dots: Bool)], unit: String = "") -> String {
        let w = 440.0, h = 220.0, l = 56.0, r = 12.0, t = 28.0, b = 30.0
        let all = series.flatMap(\.points).filter { $0.1.isFinite }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<text x=\"\(l)\" y=\"18\" class=\"t\">\(escape(title))</text>"
        guard let x0 = all.map(\.0).min(), let x1 = all.map(\.0).max(), var y0 = all.map(\.1).min(), var y1 = all.map(\.1).max() else {
            return svg + "<text x=\"\(w / 2)\" y=\"\(h / 2)\" text-anchor=\"middle\" class=\"m\">no data</text></svg>"
        }
        if y0 == y1 { y0 -= max(abs(y0) * 0.05, 1e-9); y1 += max(abs(y1) * 0.05, 1e-9) }
        let pad = (y1 - y0) * 0.05
        y0 = y0 >= 0 ? max(0, y0 - pad) : y0 - pad   // non-negative quantities keep a floor of 0
        y1 += pad
        func X(_ x: Double) -> Double { x1 == x0 ? (l + w - r) / 2 : l + (x - x0) / (x1 - x0) * (w - l - r) }
        func Y(_ y: Double) -> Double { t + (y1 - y) / (y1 - y0) * (h - t - b) }
        svg += "<rect x=\"\(l)\" y=\"\(t)\" width=\"\(w - l - r)\" height=\"\(h - t - b)\" class=\"f\"/>"
        for k in 0...4 {
            let y = y0 + (y1 - y0) * Double(k) / 4
            svg += "<line x1=\"\(l)\" x2=\"\(w - r)\" y1=\"\(Y(y))\" y2=\"\(Y(y))\" class=\"g\"/>"
            svg += "<text x=\"\(l - 4)\" y=\"\(Y(y) + 4)\" text-anchor=\"end\" class=\"a\">\(short(y))\(unit)</text>"
        }
        svg += "<text x=\"\(l)\" y=\"\(h - 10)\" class=\"a\">step \(Int(x0))</text><text x=\"\(w - r)\" y=\"\(h - 10)\" text-anchor=\"end\" class=\"a\">step \(Int(x1))</text>"
        var legend = l + 4
        for s in series {
            let pts = s.points.filter { $0.1.isFinite }
            if pts.count > 1 {
                let d = pts.map { String(format: "%.1f,%.1f", X($0.0), Y($0.1)) }.joined(separator: " ")
                svg += "<polyline points=\"\(d)\" fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.6\"/>"
            }
            if s.dots || pts.count == 1 {
                for p in pts { svg += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%@\"/>", X(p.0), Y(p.1), s.color) }
            }
            if series.count > 1 {
                svg += "<rect x=\"\(legend + 200)\" y=\"10\" width=\"10\" height=\"10\" fill=\"\(s.color)\"/><text x=\"\(legend + 214)\" y=\"19\" class=\"a\">\(escape(s.name))</text>"
                legend += 90
            }
        }
        return svg + "</svg>"
    }

    /// The memory plan as one stacked bar (resident parts), with the offloaded bytes beside it.
    static func planBar(_ plan: MemoryPlan) -> String {
        let colors = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]
        let resident = plan.parts.filter(\.resident)
        let total = max(1, resident.reduce(0) { $0 + $1.bytes })
        let w = 900.0
        var x = 0.0
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(Int(w)) 40\" role=\"img\" aria-label=\"memory plan\">"
        var legend = "<ul class=\"legend\">"
        for (i, p) in resident.enumerated() {
            let width = Double(p.bytes) / Double(total) * w
            svg += "<rect x=\"\(x)\" y=\"4\" width=\"\(max(width, 0.5))\" height=\"32\" fill=\"\(colors[i % colors.count])\"><title>\(escape(p.name)): \(ByteCount.format(p.bytes))</title></rect>"
            legend += "<li><span style=\"background:\(colors[i % colors.count])\"></span>\(escape(p.name)): \(ByteCount.format(p.bytes))</li>"
            x += width
        }
        for p in plan.parts where !p.resident { legend += "<li><span class=\"off\"></span>\(escape(p.name)) (not resident): \(ByteCount.format(p.bytes))</li>" }
        return svg + "</svg>" + legend + "</ul>"
    }

    static func table(_ rows: [(name: String, value: String)]) -> String {
        "<table>" + rows.map { "<tr><th>\(escape($0.name))</th><td>\(escape($0.value))</td></tr>" }.joined() + "</table>"
    }

    /// The page.
    public static func html(run: RunRecord, metrics m: [StepMetrics], title: String) -> String {
        let steps = m.map { Double($0.step) }
        func series(_ f: (StepMetrics) -> Double?) -> [(Double, Double)] { zip(steps, m).compactMap { s, r in f(r).map { (s, $0) } } }
        let evals = series { $0.eval_loss }
        let tps = m.dropFirst().map(\.tokens_per_second).sorted()
        var summary: [(name: String, value: String)] = [
            ("steps", "\(m.last?.step ?? 0)\(run.finished ? "" : " (unfinished)")"),
            ("final training loss", m.last.map { String(format: "%.4f", $0.loss) } ?? "-"),
            ("tokens/s (median)", tps.isEmpty ? (m.first.map { String(format: "%.1f", $0.tokens_per_second) } ?? "-") : String(format: "%.1f", tps[tps.count / 2])),
            ("peak memory (measured)", ByteCount.format(m.map(\.peak_memory_bytes).max() ?? 0)),
            ("peak memory (planned)", ByteCount.format(run.plan.peakBytes)),
            ("gradient checkpointing", run.policy),
        ]
        if let e = evals.last { summary.append(("final eval loss", String(format: "%.4f (perplexity %.3f)", e.1, exp(e.1)))) }
        if let b = run.bestCheckpoint, let e = run.bestEvalLoss { summary.append(("best checkpoint", String(format: "%@ (eval loss %.4f)", b, e))) }
        let charts = [
            chart("loss", [("train", "#4e79a7", series { $0.loss }, false)] + (evals.isEmpty ? [] : [("eval", "#e15759", evals, true)])),
            chart("learning rate", [("lr", "#59a14f", series { $0.learning_rate }, false)]),
            chart("gradient norm (before clipping)", [("grad", "#f28e2b", series { $0.grad_norm }, false)]),
            chart("tokens / s", [("tokens/s", "#76b7b2", series { $0.tokens_per_second }, false)]),
            chart("peak memory (GB)", [("memory", "#b07aa1", series { Double($0.peak_memory_bytes) / 1e9 }, false)]),
        ]
        return """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>sloth train: \(escape(title))</title>
        <style>
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:960px;color:#222;background:#fff}
        h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
        .grid{display:grid;grid-template-columns:repeat(2,1fr);gap:12px}.grid svg{width:100%;height:auto;border:1px solid #eee;border-radius:4px}
        svg .t{font-size:13px;font-weight:600;fill:#222}svg .a{font-size:10px;fill:#555}svg .m{font-size:12px;fill:#999}
        svg .f{fill:#fafafa}svg .g{stroke:#e4e4e4;stroke-width:1}
        table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eee;font-size:13px;vertical-align:top}
        th{width:34%;color:#555;font-weight:500}td{font-family:ui-monospace,Menlo,monospace;word-break:break-all}
        .legend{list-style:none;padding:0;margin:6px 0;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px}
        .legend span{display:inline-block;width:10px;height:10px;margin-right:5px;vertical-align:middle}.legend .off{background:repeating-linear-gradient(45deg,#999,#999 2px,#fff 2px,#fff 4px)}
        .muted{color:#777}
        </style></head><body>
        <h1>sloth train: \(escape(title))</h1>
        <p class="muted">started \(escape(run.started)) · \(m.count) steps logged</p>
        <h2>Summary</h2>\(table(summary))
        <h2>Curves</h2><div class="grid">\(charts.joined(separator: "\n"))</div>
        <h2>Memory plan (\(escape(run.policy)), \(run.plan.batch) x \(run.plan.tokens) tokens: \(ByteCount.format(run.plan.peakBytes)) peak)</h2>\(planBar(run.plan))
        <h2>Configuration</h2>\(table(run.configuration))
        <h2>Environment</h2>\(table(run.environment))
        </body></html>

        """
    }
}
