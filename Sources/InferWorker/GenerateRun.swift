import Foundation
import TesseraCollectives
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraParallel
import TesseraTokenizer
import TesseraTopology

extension GenerateCommand {
    func runGenerate(runtime: MPIRuntime, modelPath: String, prompts: [String]) throws {
        let topology = try topologyOptions.load()
        let groups = try ProcessGroups.build(topology: topology, world: runtime.world)
        let world = groups.world
        let loadStart = Date()
        let source = try ModelSource.open(path: modelPath)
        guard case .decoder(let role) = groups.role else {
            try DecoderWorker.serve(groups: groups, stage: nil)              // vision ranks idle in a text job
            _ = try RankReport.gather(RankReport(communicationSeconds: communicationSeconds(groups)), groups: groups)
            if modelOptions.profile { _ = try ProfileReport.gather("", groups: groups) }
            return
        }
        guard !noKvCache || world.size == 1 else {
            throw GenerationError(description: "--no-kv-cache runs on one rank only (this job has \(world.size))")
        }
        let config = try ModelRegistry.config(of: source)
        let layers = try topology.layerRanges(layerCount: config.layerCount)[role.ppStage]
        let model: any LanguageModel
        var tensorParallel: TensorParallelModel? = nil
        let options = try modelOptions.loadOptions(layers: layers)
        if let tpGroup = groups.tensorParallel, tpGroup.size > 1 {
            let plan = try TensorParallelPlan(source: source, size: tpGroup.size)     // fails before any weight is read
            let group = CommunicatorGroup(tpGroup, reduction: tpReduction == .mpi ? .mpi : .rankOrder)
            tensorParallel = try TensorParallel.load(source, plan: plan, group: group, options: options)
            model = tensorParallel!
        } else {
            model = try ModelRegistry.load(source, options: options)
        }
        // Every rank must agree on the context: the smallest any rank can afford.
        var agreed = [Int64(try contextLength(model: model, slots: prompts.count, requested: modelOptions.context,
                                              kvBytesPerPosition: options.kvCache.rowBytes(kvDim: model.kvFloatsPerPosition,
                                                                                            headDim: config.headDim)))]
        try agreed.withUnsafeMutableBufferPointer { try groups.decoder!.allReduce($0, op: .min) }
        let context = Int(agreed[0])

        let executor: any StepExecutor
        var distributed: DistributedExecutor? = nil
        var planned = 0, owned = 0, lookupOnly = true
        let clock = StepClock()
        var runStage: PipelineStage? = nil
        if world.size == 1 {
            warmFileCache(modelPath)
            executor = noKvCache
                ? try RecomputingExecutor(model: model, sequenceSlots: prompts.count, contextLength: context)
                : try LocalExecutor(model: model, sequenceSlots: prompts.count, contextLength: context)
        } else {
            let stage = try PipelineStage(model: model, layers: layers, pipeline: groups.pipeline!,
                                          sequenceSlots: prompts.count, contextLength: context)
            if let f = fault.flatMap(InjectedFault.init), f.rank == world.rank { stage.fault = f }
            stage.onFirstStep = { [clock] in
                for c in groups.all { c.stats.reset() }
                clock.start = Date()
            }
            runStage = stage
            // The plan's share of this stage's layers (a one-rank plan when there is no tensor parallelism);
            // the head is a view that only the last stage ever reads.
            let share = try (tensorParallel?.plannedWeights
                ?? TensorParallelPlan(source: source, size: 1)[0].weights(layers: layers))
            planned = share.total - (stage.isLast ? 0 : share.head)
            owned = tensorParallel?.heldWeights.owned ?? 0
            lookupOnly = tensorParallel != nil || !stage.isLast
            guard groups.isCoordinator else {
                try DecoderWorker.serve(groups: groups, stage: stage)
                _ = try RankReport.gather(report(planned: planned, owned: owned, repacked: model.repackedWeightBytes, lookupOnlyEmbedding: lookupOnly,
                       source: source, groups: groups,
                       clock: clock, steps: runStage?.steps ?? 0), groups: groups)
                if modelOptions.profile {
                    _ = try ProfileReport.gather(ProfileReport.text(model, steps: stage.steps, groups: groups), groups: groups)
                }
                return
            }
            distributed = DistributedExecutor(groups: groups, stage: stage, sequenceSlots: prompts.count, contextLength: context)
            executor = distributed!
        }
        guard groups.isCoordinator else { return }

        let tokenizer = try Tokenizer.load(source)
        let requestsTokens = try promptTokens(prompts, tokenizer: tokenizer)
        log(String(format: "tessera: loaded %@ (%@, %d layers) in %.2f s; context %d; %d rank%@; %@ products on %d thread%@ per rank (CPU level %@)",
                   modelPath, (try? ModelRegistry.kind(of: source).rawValue) ?? "?", model.layerCount,
                   Date().timeIntervalSince(loadStart), context, world.size, world.size == 1 ? "" : "s",
                   options.compute.mode.description, options.compute.threads, options.compute.threads == 1 ? "" : "s",
                   CPULevel.active.description))
        var shutDown = false
        defer { if !shutDown { try? distributed?.shutdown() } }

        let seed = sampling.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        if sampling.seed == nil && sampling.temperature > 0 { log("tessera: seed \(seed)") }
        let requests = requestsTokens.map {
            GenerationRequest(promptTokens: $0, maxTokens: sampling.maxTokens, sampling: sampling.parameters(seed: seed),
                              stopStrings: sampling.stop, stopAtEOS: !sampling.ignoreEOS)
        }
        let generator = Generator(executor: executor, tokenizer: tokenizer)
        generator.keepPromptLogits = promptLogits != nil
        let streaming = format == .text && prompts.count == 1
        let (outputs, stats) = try generator.generate(requests) { _, text in
            if streaming { writeOut(String(text)) }
        }
        switch format {
        case .text:
            if streaming { writeOut("\n") } else { for o in outputs { writeOut(o.text + "\n") } }
        case .jsonl:
            for (i, o) in outputs.enumerated() {
                writeOut(jsonLine(["prompt_index": i, "prompt_ids": requests[i].promptTokens, "ids": o.tokens,
                                   "text": o.text, "stop_reason": o.stopReason.rawValue]) + "\n")
            }
        }
        if let distributed {
            try distributed.shutdown()
            shutDown = true
            if let reports = try RankReport.gather(report(planned: planned, owned: owned, repacked: model.repackedWeightBytes, lookupOnlyEmbedding: lookupOnly,
                       source: source, groups: groups,
                       clock: clock, steps: runStage?.steps ?? 0), groups: groups) {
                log(RankReport.render(reports, groups: groups))
            }
            if modelOptions.profile, let texts = try ProfileReport.gather(
                ProfileReport.text(model, steps: runStage?.steps ?? 0, groups: groups), groups: groups) {
                log(ProfileReport.render(texts))
            }
        } else if modelOptions.profile {
            log(ProfileReport.render([ProfileReport.text(model, steps: stats.decodeSteps + 1, groups: nil)]))
        }
        if let promptLogits {
            let floats = outputs.flatMap { $0.promptLogits ?? [] }
            try floats.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: promptLogits)) }
        }
        log(speedReport(stats, weightBytes: model.weightBytes))
    }

    /// Resident weights = pages of this rank's weight mappings + the slices it copied into its own memory. The
    /// whole token-embedding table is left out where it serves only lookups (single rows read on demand), i.e.
    /// everywhere but a pipeline-only last stage, whose tied head it is.
    /// `repacked`: the `--fast` copies the rank holds instead of (or beside) its mapped slices.
    func report(planned: Int, owned: Int, repacked: Int, lookupOnlyEmbedding: Bool, source: ModelSource,
                groups: ProcessGroups, clock: StepClock, steps: Int) -> RankReport {
        var resident = owned + repacked
        if case .gguf(let file) = source {
            resident += file.residentIsolatedBytes(excluding: lookupOnlyEmbedding ? ["token_embd.weight"] : [])
        }
        return RankReport(residentWeightBytes: resident, plannedWeightBytes: planned,
                          communicationSeconds: communicationSeconds(groups),
                          wallSeconds: clock.start.map { Date().timeIntervalSince($0) } ?? 0, steps: steps)
    }

    /// The requested context, else the model's own capped so the KV cache takes at most half the available memory.
    /// `kvBytesPerPosition`: one layer's keys (or values) of one position in the cache's storage type.
    func contextLength(model: any LanguageModel, slots: Int, requested: Int?, kvBytesPerPosition: Int) throws -> Int {
        if let requested {
            guard requested > 0 else { throw GenerationError(description: "--context must be positive, got \(requested)") }
            return requested
        }
        let trained = model.trainedContextLength
        let bytesPerPosition = model.layerCount * 2 * kvBytesPerPosition * slots
        let budget = availableMemory() / 2
        let fits = max(1, budget / max(bytesPerPosition, 1))
        if fits < trained {
            log("tessera: context capped at \(fits) positions (the model's \(trained) would need \(trained * bytesPerPosition >> 20) MiB of KV cache; \(budget >> 20) MiB available); set --context to choose")
            return fits
        }
        return trained
    }
}

extension TopologyOptions {
    func load() throws -> Topology { try topology.map { try Topology.load(path: $0) } ?? .singleRank }
}

/// Reads the model's files once into the page cache (with a progress bar when stderr is a terminal), so the first
/// tokens are not slowed by disk reads. pread, not the mapping: nothing stays resident in this process for it.
func warmFileCache(_ modelPath: String) {
    var files = [modelPath]
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: modelPath, isDirectory: &isFolder), isFolder.boolValue {
        files = ((try? FileManager.default.contentsOfDirectory(atPath: modelPath)) ?? [])
            .filter { $0.hasSuffix(".safetensors") }.sorted().map { modelPath + "/" + $0 }
    }
    let sizes = files.map { (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int) ?? 0 }
    let total = max(sizes.reduce(0, +), 1), tty = isatty(STDERR_FILENO) != 0
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 4096)
    defer { buffer.deallocate() }
    var done = 0, shown = -1
    for file in files {
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else { continue }
        defer { close(fd) }
        var offset = 0
        while true {
            let got = pread(fd, buffer, chunk, off_t(offset))
            if got <= 0 { break }
            offset += got; done += got
            let percent = done * 100 / total
            if tty && percent != shown {
                shown = percent
                let bar = String(repeating: "█", count: percent / 4) + String(repeating: " ", count: 25 - percent / 4)
                fputs("\rloading \(URL(fileURLWithPath: modelPath).lastPathComponent) |\(bar)| \(percent)% ", stderr)
            }
        }
    }
    if tty { fputs("\r" + String(repeating: " ", count: 100) + "\r", stderr) }
}

func speedReport(_ s: GenerationStats, weightBytes: Int) -> String {
    String(format: "tessera: prompt %d tokens, %.1f tokens/s; generated %d tokens, %.1f tokens/s; time to first token %.3f s; weights %.1f MiB; peak memory %.1f MiB",
           s.promptTokens, s.promptTokensPerSecond, s.generatedTokens, s.generatedTokensPerSecond, s.timeToFirstToken,
           Double(weightBytes) / 1048576, Double(peakResidentBytes()) / 1048576)
}

/// Peak resident set size of this process.
func peakResidentBytes() -> Int {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return usage.ru_maxrss * 1024
}

/// MemAvailable from /proc/meminfo (8 GiB if it cannot be read).
func availableMemory() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
          let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 8 << 30 }
    return kb * 1024
}

/// Writes to stdout unbuffered, so streamed text appears as it is produced.
func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

func jsonLine(_ object: [String: Any]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// When this rank's first step started (set once, from the stage).
final class StepClock: @unchecked Sendable {
    var start: Date?
}
