import ArgumentParser
import Foundation

/// The synthetic benchmark files of `compare --types`, made once into a cache folder: types Tessera writes come from
/// `synth-model`; llama.cpp's file types (the K-quant mixes, IQ4_NL, IQ4_XS, …) from llama.cpp's own quantizer
/// (`llama_model_quantize` through llama-cpp-python) applied to the f16 file of the same shape and seed, so the mix
/// rules (which tensors stay at higher precision, the fallbacks for rows that are not whole 256-blocks) are llama.cpp's.
struct SyntheticFiles {
    let cache: String
    let python: String

    func path(preset: SyntheticModelCommand.Preset, type: String) throws -> String {
        let out = "\(cache)/synth-\(preset.rawValue)-\(type).gguf"
        if FileManager.default.fileExists(atPath: out) { return out }
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let part = out + ".part"
        if let own = SyntheticModelCommand.types[type] {
            print("writing \(out) (synth-model, \(type))")
            try SyntheticModelCommand.write(out: part, preset: preset, type: own, seed: 1)
        } else {
            let source = try path(preset: preset, type: "f16")
            print("writing \(out) (llama.cpp's quantizer, \(type), from \(source))")
            let (status, _, err) = try runCapturing(URL(fileURLWithPath: python), ["-c", Self.quantizeScript, source, part, type])
            guard status == 0 else {
                try? FileManager.default.removeItem(atPath: part)
                throw ValidationError("llama.cpp could not quantize to '\(type)': \(err.suffix(800))")
            }
        }
        try FileManager.default.moveItem(atPath: part, toPath: out)
        return out
    }

    /// `python -c SCRIPT SOURCE OUT TYPE`: llama.cpp's quantizer with its default parameters for file type TYPE.
    static let quantizeScript = #"""
import sys, llama_cpp
src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + name.upper(), None)
if ftype is None:
    sys.exit("llama.cpp has no file type '%s'" % name)
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = ftype
sys.exit(llama_cpp.llama_model_quantize(src.encode(), dst.encode(), p))
"""#
}

/// An SVG bar chart of Tessera / llama.cpp ratios, prompt and decode, one group per (file, threads) row, with the
/// parity line and the goals (1.2× decode, 1.5× prompt).
struct RatioChart {
    let rows: [CompareBench.Row]

    func svg() -> String {
        let groupWidth = 56.0, barWidth = 20.0, height = 260.0, top = 30.0, left = 50.0, bottom = 120.0
        let ratios = rows.flatMap { [$0.ours.prompt / max($0.theirs.prompt, 1e-9), $0.ours.decode / max($0.theirs.decode, 1e-9)] }
        let maxRatio = max(2.0, (ratios.max() ?? 1) * 1.1)
        let width = left + groupWidth * Double(rows.count) + 20
        func y(_ r: Double) -> Double { top + height * (1 - r / maxRatio) }
        var out = [String(format: #"<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">"#,
                          width, top + height + bottom)]
        out.append(#"<text x="10" y="18" font-size="13">Tessera / llama.cpp, same file and threads (blue: prompt, orange: decode)</text>"#)
        for (r, label, color) in [(1.0, "1.0", "#444"), (1.2, "1.2 decode goal", "#d95f02"), (1.5, "1.5 prompt goal", "#1b9e77")] {
            out.append(String(format: #"<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="%@" stroke-dasharray="4 3"/>"#,
                              left, width - 10, y(r), y(r), color))
            out.append(String(format: #"<text x="%.0f" y="%.1f" fill="%@" text-anchor="end">"#, width - 12, y(r) - 3, color)
                       + label + "</text>")
        }
        for (i, row) in rows.enumerated() {
            let x0 = left + groupWidth * Double(i) + 6
            for (k, (ratio, color)) in [(ratios[2 * i], "#4477aa"), (ratios[2 * i + 1], "#ee7733")].enumerated() {
                let x = x0 + Double(k) * barWidth
                out.append(String(format: #"<rect x="%.1f" y="%.1f" width="%.0f" height="%.1f" fill="%@"/>"#,
                                  x, y(ratio), barWidth - 2, top + height - y(ratio), color))
                out.append(String(format: #"<text x="%.1f" y="%.1f" font-size="9">%.2f</text>"#, x, y(ratio) - 3, ratio))
            }
            let label = "\(row.label) t\(row.threads)"
            out.append(String(format: #"<text transform="translate(%.1f,%.1f) rotate(60)">"#, x0 + 6, top + height + 12)
                       + label.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;") + "</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
