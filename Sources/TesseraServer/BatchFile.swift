import Foundation
import TesseraEngine
import TesseraFormats

/// Offline batch mode: a JSONL file of OpenAI-style requests through the scheduler, one result line per input line,
/// in input order. A line is either a request body (chat when it has `messages`, else a completion) or an OpenAI
/// Batch API line, `{"custom_id", "method": "POST", "url": "/v1/chat/completions" | "/v1/completions", "body"}`.
/// Each result is a Batch API output line plus the input line number:
/// `{"id", "custom_id", "line", "response": {"status_code", "body"}, "error"}`; a bad line gets its error there
/// (the `error` object of the server's 400) and the others still run. Results are appended in order as they become
/// due, so the output is always the results of a prefix of the input: a rerun skips that prefix (resumes).
public final class BatchRun {
    public struct Summary: Sendable {
        public var skipped = 0
        public var succeeded = 0
        /// Input line numbers whose request was refused.
        public var failedLines: [Int] = []
        public var generatedTokens = 0
        public var seconds = 0.0
    }

    let input: String
    let output: String
    let model: ServedModel
    let scheduler: Scheduler
    /// Requests handed to the scheduler at once (the rest wait in the file).
    let window: Int
    let progress: Bool
    /// Refuse lines whose `model` is not the served name (otherwise the field is ignored: batch files are often
    /// written for another provider's model names).
    let checkModelName: Bool

    public init(input: String, output: String, model: ServedModel, scheduler: Scheduler, window: Int, progress: Bool,
                checkModelName: Bool) {
        self.input = input; self.output = output; self.model = model; self.scheduler = scheduler
        self.window = max(1, window); self.progress = progress; self.checkModelName = checkModelName
    }

    /// A parsed input line: its job, or the error that refuses it.
    private struct Line {
        let number: Int
        let customID: String
        let parsed: Result<CompletionJob, APIError>
    }

    public func run() throws -> Summary {
        let start = Date()
        let lines = try readInput()
        var summary = Summary()
        let done = try resumePoint(total: lines.count)
        summary.skipped = done
        let out = try openOutput()
        defer { try? out.close() }

        var results: [Int: [String: Any]] = [:]   // finished, by index into `lines`, not yet written
        var nextToWrite = done, nextToSubmit = done, inFlight = 0
        var jobs: [Int: CompletionJob] = [:]
        scheduler.onFinish = { id, o in
            guard let job = jobs.removeValue(forKey: id) else { return }
            let reply = Reply(job: job, model: self.model, id: "batch-\(lines[id].number)")
            results[id] = ["status_code": 200, "body": reply.whole(o)]
            summary.generatedTokens += o.tokens.count
            inFlight -= 1
        }
        defer { scheduler.onFinish = { _, _ in } }
        while nextToWrite < lines.count {
            while nextToSubmit < lines.count && inFlight < window {
                let i = nextToSubmit
                nextToSubmit += 1
                switch lines[i].parsed {
                case .success(let job):
                    do {
                        try scheduler.submit(job.request, id: i)
                        jobs[i] = job
                        inFlight += 1
                    } catch {
                        results[i] = ["status_code": 400, "error": APIError(status: 400, message: "\(error)").json]
                    }
                case .failure(let error):
                    results[i] = ["status_code": error.status, "error": error.json]
                }
            }
            while let result = results.removeValue(forKey: nextToWrite) {
                let line = lines[nextToWrite]
                let status = result["status_code"] as? Int ?? 500
                var record: [String: Any] = ["id": "batch-\(line.number)", "custom_id": line.customID, "line": line.number]
                if let body = result["body"] {
                    record["response"] = ["status_code": status, "body": body]
                    record["error"] = NSNull()
                    summary.succeeded += 1
                } else {
                    record["response"] = ["status_code": status, "body": result["error"] ?? NSNull()]
                    record["error"] = ((result["error"] as? [String: Any])?["error"]) ?? NSNull()
                    summary.failedLines.append(line.number)
                }
                var bytes = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
                bytes.append(0x0A)
                try out.write(contentsOf: bytes)
                nextToWrite += 1
                showProgress(nextToWrite - done, of: lines.count - done, tokens: summary.generatedTokens, since: start, final: false)
            }
            guard nextToWrite < lines.count else { break }
            if scheduler.hasWork {
                _ = try scheduler.step()
            } else if results[nextToWrite] == nil {
                // Nothing runs and the next result is missing: a request ended without a finish. Fail, never spin.
                throw APIError(status: 500, message: "\(input) line \(lines[nextToWrite].number): the scheduler ended the request without a result")
            }
        }
        showProgress(nextToWrite - done, of: lines.count - done, tokens: summary.generatedTokens, since: start, final: true)
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }

    /// The input's non-blank lines, parsed; a line's number is its line in the file.
    private func readInput() throws -> [Line] {
        guard let data = FileManager.default.contents(atPath: input) else {
            throw APIError(status: 400, message: "cannot read the batch input \(input)")
        }
        var lines: [Line] = []
        for (k, raw) in data.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() {
            let bytes = [UInt8](raw)
            if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            lines.append(parseLine(bytes, number: k + 1))
        }
        return lines
    }

    private func parseLine(_ bytes: [UInt8], number: Int) -> Line {
        var customID = "line-\(number)"
        do {
            var body = try parseBody(bytes)
            var endpoint: Endpoint = body["messages"] != nil ? .chat : .completion
            if let wrapped = body["body"] {
                let f = Fields(body: body)
                if let id = try f.string("custom_id") { customID = id }
                guard let inner = wrapped.object else { throw APIError.invalid("body", "'body' must be a JSON object") }
                switch try f.string("url") {
                case "/v1/chat/completions": endpoint = .chat
                case "/v1/completions": endpoint = .completion
                case nil: endpoint = inner["messages"] != nil ? .chat : .completion
                case let other?: throw APIError.invalid("url", "batch lines go to /v1/completions or /v1/chat/completions, not '\(other)'")
                }
                if let method = try f.string("method"), method != "POST" { throw APIError.invalid("method", "batch lines are POST requests, not \(method)") }
                body = inner
            }
            if !checkModelName { body["model"] = nil }
            if body["stream"]?.bool == true { throw APIError.invalid("stream", "a batch request cannot stream") }
            return Line(number: number, customID: customID, parsed: .success(try parseCompletion(body, endpoint: endpoint, model: model)))
        } catch let error as APIError {
            return Line(number: number, customID: customID, parsed: .failure(error))
        } catch {
            return Line(number: number, customID: customID, parsed: .failure(APIError(status: 400, message: "\(error)")))
        }
    }

    /// How many results the output already holds (a prefix of the input), after cutting off a half-written last
    /// line (a run that was killed mid-write).
    private func resumePoint(total: Int) throws -> Int {
        guard let data = FileManager.default.contents(atPath: output), !data.isEmpty else { return 0 }
        var complete = data
        if complete.last != 0x0A {
            complete = complete.prefix(through: complete.lastIndex(of: 0x0A) ?? -1)
            try complete.write(to: URL(fileURLWithPath: output))
        }
        let count = complete.split(separator: 0x0A).count
        guard count <= total else {
            throw APIError(status: 400, message: "\(output) holds \(count) results but \(input) has only \(total) requests: not this input's output")
        }
        return count
    }

    private func openOutput() throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: output) {
            guard FileManager.default.createFile(atPath: output, contents: nil) else {
                throw APIError(status: 400, message: "cannot create the batch output \(output)")
            }
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        try handle.seekToEnd()
        return handle
    }

    private func showProgress(_ done: Int, of total: Int, tokens: Int, since start: Date, final: Bool) {
        guard progress else { return }
        let elapsed = Date().timeIntervalSince(start)
        let fraction = total == 0 ? 1 : Double(done) / Double(total)
        let width = 30, filled = Int(fraction * Double(width))
        let eta = done == 0 ? "" : String(format: ", %.0f s left", elapsed / Double(done) * Double(total - done))
        let bar = String(repeating: "█", count: filled) + String(repeating: " ", count: width - filled)
        fputs(String(format: "\r|%@| %d/%d requests, %.1f tokens/s%@   ", bar, done, total, Double(tokens) / max(elapsed, 1e-9), eta), stderr)
        if final { fputs("\n", stderr) }
    }
}
