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
        let loadStart = Date()
        let (deployment, source, load) = try loadDeployment(
            world: try topologyOptions.world(runtime), modelPath: modelPath, topology: try topologyOptions.load(), model: modelOptions, scheduling: scheduling,
            slots: scheduling.maxSequences ?? prompts.count, reduction: tpReduction == .mpi ? .mpi : .rankOrder,
            wire: try topologyOptions.wireFormat(),
            recompute: noKvCache, fault: fault)
        guard case .coordinator(let executor) = deployment.part else {
            try deployment.serve()
            try gatherReports(deployment, source: source)
            return
        }
        if runtime.world.size == 1 { warmFileCache(modelPath) }
        let model = deployment.model!
        let tokenizer = try Tokenizer.load(source)
        let requestsTokens = try promptTokens(prompts, tokenizer: tokenizer)
        logLoaded(deployment, modelPath: modelPath, load: load, since: loadStart)
        defer { try? deployment.finish() }

        let seed = sampling.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        if sampling.seed == nil && sampling.temperature > 0 { log("tessera: seed \(seed)") }
        let requests = requestsTokens.map {
            GenerationRequest(promptTokens: $0, maxTokens: sampling.maxTokens, sampling: sampling.parameters(seed: seed),
                              stopStrings: sampling.stop, stopAtEOS: !sampling.ignoreEOS)
        }
        let generator = Generator(executor: executor, tokenizer: tokenizer, options: scheduling.scheduler())
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
                                   "text": o.text, "stop_reason": o.stopReason.rawValue,
                                   "cached_tokens": o.cachedPromptTokens]) + "\n")
            }
        }
        try deployment.finish()
        if runtime.world.size > 1 {
            try gatherReports(deployment, source: source)
        } else if modelOptions.profile {
            log(ProfileReport.render([ProfileReport.text(model, steps: stats.decodeSteps + 1, groups: nil)]))
        }
        if let promptLogits {
            let floats = outputs.flatMap { $0.promptLogits ?? [] }
            try floats.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: promptLogits)) }
        }
        log(speedReport(stats, weightBytes: model.weightBytes))
        if let s = generator.scheduler {
            let c = s.counters
            log("tessera: scheduler: \(c.steps) steps, \(c.preemptions) preemption\(c.preemptions == 1 ? "" : "s"), \(c.computedPromptTokens) prompt positions computed"
                + (s.blocks.prefixCaching ? ", prefix cache \(s.blocks.hitTokens) of \(s.blocks.queriedTokens) prompt tokens" : ""))
        }
    }

    /// Collective over the world: every rank's report (and, with --profile, operator table), printed by the
    /// coordinator.
    func gatherReports(_ deployment: Deployment, source: ModelSource) throws {
        let groups = deployment.groups
        guard groups.world.size > 1 else { return }
        if let reports = try RankReport.gather(RankReport(deployment, source: source), groups: groups) {
            log(RankReport.render(reports, groups: groups))
        }
        if modelOptions.profile, let texts = try ProfileReport.gather(
            ProfileReport.text(deployment.model, steps: deployment.steps, groups: groups), groups: groups) {
            log(ProfileReport.render(texts))
        }
    }
}

/// Builds this rank's deployment from the command line (collective over the world).
func loadDeployment(world: Communicator, modelPath: String, topology: Topology, model: ModelOptions,
                    scheduling: SchedulingOptions, slots: Int, reduction: CommunicatorGroup.Reduction = .rankOrder, wire: WireFormat,
                    recompute: Bool = false, fault: String? = nil) throws -> (Deployment, ModelSource, LoadOptions) {
    let source = try ModelSource.open(path: modelPath)
    let load = try model.loadOptions()
    let deployment = try Deployment(
        topology: topology, world: world, source: source,
        options: DeploymentOptions(load: load, sequenceSlots: slots, context: model.context, reduction: reduction, wire: wire,
                                   recompute: recompute, fault: fault.flatMap(InjectedFault.init),
                                   kvBlockSize: scheduling.kvBlockSize, kvCacheMemory: scheduling.kvCacheMemory))
    return (deployment, source, load)
}

/// The coordinator's line on stderr once the model is loaded (and the slow-path notice, if any).
func logLoaded(_ deployment: Deployment, modelPath: String, load: LoadOptions, since start: Date) {
    let size = deployment.groups.world.size
    log(String(format: "tessera: loaded %@ (%@, %d layers) in %.2f s; context %d; KV cache %d blocks of %d positions (%@ per rank); %d rank%@; %@ products on %d thread%@ per rank (CPU level %@)",
               modelPath, deployment.blueprint.architecture, (deployment.model?.layerCount ?? 0), Date().timeIntervalSince(start),
               deployment.context, deployment.paging.blockCount, deployment.paging.blockSize,
               byteSize(deployment.kvCacheBytes), size, size == 1 ? "" : "s",
               load.compute.mode.description, load.compute.threads, load.compute.threads == 1 ? "" : "s",
               CPULevel.active.description))
    if let notice = deployment.slowPathNotice { log("tessera: " + notice) }
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

/// Writes to stdout unbuffered, so streamed text appears as it is produced.
func writeOut(_ text: String) {
    FileHandle.standardOutput.write(Data(text.utf8))
}

/// `n` bytes as KiB, MiB or GiB with one decimal.
func byteSize(_ n: Int) -> String {
    let units = [("GiB", 30), ("MiB", 20), ("KiB", 10)]
    for (name, shift) in units where n >= 1 << shift { return String(format: "%.1f %@", Double(n) / Double(1 << shift), name) }
    return "\(n) B"
}

func jsonLine(_ object: [String: Any]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}
