// Turns one logits vector into one token id: penalties → top-k → temperature → softmax → top-p → min-p → draw.
// Pure and deterministic: all state is the explicit RNG, all arithmetic is IEEE +, -, *, / done in a fixed order
// (the exponential included), so the same logits, history and seed give the same token on every machine.

/// Samples tokens for one sequence. Scratch memory sized to the vocabulary is allocated once, at init; `sample`
/// allocates nothing. The order of operations is documented on `SamplingParameters`.
///
/// Not thread-safe per value, but a value type: a copy gets its own scratch on its first use (copy-on-write)
/// and continues the random stream from the point of the copy.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    /// Size the scratch was allocated for; larger logits vectors grow it once.
    public let vocabularySize: Int
    /// The random stream, advanced by at most one `nextDouble()` per token (none when greedy).
    public private(set) var random: RandomGenerator
    private var scratch: SamplerScratch

    /// Throws `SamplingParameterError` for invalid parameters or a vocabulary size < 1.
    public init(parameters: SamplingParameters, vocabularySize: Int) throws {
        try parameters.validate()
        guard vocabularySize > 0 else {
            throw SamplingParameterError(parameter: "vocabularySize", reason: "must be > 0, got \(vocabularySize)")
        }
        self.parameters = parameters
        self.vocabularySize = vocabularySize
        random = RandomGenerator(seed: parameters.seed)
        scratch = SamplerScratch(capacity: vocabularySize)
    }

    /// Draws the next token from `logits` (one entry per token id), which it may modify in place.
    /// `history` holds the sequence's prior token ids, prompt included; ids outside the logits range are ignored.
    /// Returns 0 for an empty `logits`.
    public mutating func sample(logits: UnsafeMutableBufferPointer<Float>, history: some Collection<Int>) -> Int {
        let n = logits.count
        guard n > 0, let l = logits.baseAddress else { return 0 }
        prepareScratch(n)
        if parameters.hasPenalties { penalize(l, n, history) }
        if parameters.temperature == 0 { return argmax(l, n) }

        let ids = scratch.ids, w = scratch.weights
        // 1. Candidates, their logits widened into w: the top-k ids (heap order), or every id (slot = id).
        let k = parameters.topK
        let topK = k > 0 && k < n
        let m = topK ? k : n
        var maxLogit = -Float.infinity
        if topK {
            selectTopK(l, n, k, ids)
            for j in 0..<m { let v = l[Int(ids[j])]; w[j] = Double(v); if v > maxLogit { maxLogit = v } }
        } else {
            for i in 0..<n { let v = l[i]; w[i] = Double(v); if v > maxLogit { maxLogit = v } }
        }
        guard maxLogit > -Float.infinity else { return argmax(l, n) }   // every candidate is -inf or NaN

        // 2. Temperature + softmax, unnormalised: w = exp((logit - max) / T), so the best candidate weighs exactly 1.
        softmaxWeights(w, m, max: Double(maxLogit), inverseTemperature: 1 / parameters.temperature)
        var total = 0.0
        for j in 0..<m { total += w[j] }

        // 3. No top-p / min-p: draw over all candidates in slot order.
        guard parameters.topP < 1 || parameters.minP > 0 else {
            return draw(topK ? ids : nil, w, from: 0, to: m, sum: total)
        }

        // 4. Min-p, and top-p's exact pre-filter: drop tokens below min-p, and tokens so light that all tokens
        //    as light together stay under half of the 1 - topP tail (the nucleus is complete before them).
        //    Both filters keep a prefix of the same sorted order, so min-p first gives the documented result.
        let tail = parameters.topP < 1 ? 0.5 * (1 - parameters.topP) * total / Double(m) : 0
        let cutoff = Swift.max(parameters.minP, tail)   // <= 1: the best candidate always stays
        var c = 0, keptTotal = 0.0
        for j in 0..<m where w[j] >= cutoff {
            ids[c] = topK ? ids[j] : Int32(truncatingIfNeeded: j); w[c] = w[j]; keptTotal += w[j]; c += 1
        }
        guard parameters.topP < 1 else { return draw(ids, w, from: 0, to: c, sum: keptTotal) }

        // 5. Top-p keeps the smallest prefix of the candidates sorted by (probability desc, id asc) reaching topP
        //    of the top-k mass. Pop it off a max-heap (no full sort); popped slots collect at the tail, best at c - 1.
        buildMaxHeap(ids, w, c)
        let massTarget = parameters.topP * total
        var heapCount = c, keptSum = 0.0
        while heapCount > 0 {
            heapCount -= 1
            keptSum += w[0]
            swapSlots(ids, w, 0, heapCount)
            siftDownMax(ids, w, 0, heapCount)
            if keptSum >= massTarget { break }
        }
        return draw(ids, w, from: c - 1, to: heapCount - 1, sum: keptSum)
    }

    /// Copies `logits` into the sampler's scratch and samples from the copy (the array is left untouched).
    public mutating func sample(logits: [Float], history: some Collection<Int>) -> Int {
        guard !logits.isEmpty else { return 0 }
        prepareScratch(logits.count)
        let buffer = UnsafeMutableBufferPointer(start: scratch.logits, count: logits.count)
        _ = buffer.update(fromContentsOf: logits)
        return sample(logits: buffer, history: history)
    }

    /// Applies the repetition, presence and frequency penalties of `parameters` in place, exactly as `sample`
    /// does first: for each distinct token t among the last `penaltyWindow` ids of `history`, occurring c times,
    /// `logit[t] = logit[t] > 0 ? logit[t] / repetition : logit[t] * repetition`, then
    /// `logit[t] -= presence + frequency * c`.
    public mutating func applyPenalties(to logits: UnsafeMutableBufferPointer<Float>, history: some Collection<Int>) {
        guard parameters.hasPenalties, let l = logits.baseAddress, logits.count > 0 else { return }
        prepareScratch(logits.count)
        penalize(l, logits.count, history)
    }

    // MARK: - Steps

    /// Gives this value sole ownership of a scratch of at least `n` slots.
    private mutating func prepareScratch(_ n: Int) {
        if !isKnownUniquelyReferenced(&scratch) || scratch.capacity < n {
            scratch = SamplerScratch(capacity: max(n, scratch.capacity))
        }
    }

    /// Contiguous histories (arrays, slices, buffers) take the non-generic path, which never allocates.
    private func penalize(_ l: UnsafeMutablePointer<Float>, _ n: Int, _ history: some Collection<Int>) {
        let done: Void? = history.withContiguousStorageIfAvailable { penalize(l, n, window: $0.suffix(parameters.penaltyWindow)) }
        if done == nil { penalize(l, n, window: history.suffix(parameters.penaltyWindow)) }
    }

    private func penalize(_ l: UnsafeMutablePointer<Float>, _ n: Int, window: some Collection<Int>) {
        let counts = scratch.counts   // all zero on entry and on exit
        for t in window where t >= 0 && t < n { counts[t] += 1 }
        let repetition = Float(parameters.repetitionPenalty)
        let presence = Float(parameters.presencePenalty), frequency = Float(parameters.frequencyPenalty)
        for t in window where t >= 0 && t < n {
            let c = counts[t]
            guard c > 0 else { continue }   // already penalised
            counts[t] = 0
            var v = l[t]
            if repetition != 1 { v = v > 0 ? v / repetition : v * repetition }
            l[t] = v - (presence + frequency * Float(c))
        }
    }

    /// Inverse-CDF draw over slots `from` stepping towards `to` (exclusive), whose weights sum to `sum`;
    /// a slot's token is `ids[slot]`, or the slot itself when `ids` is nil.
    private mutating func draw(_ ids: UnsafeMutablePointer<Int32>?, _ w: UnsafeMutablePointer<Double>,
                               from: Int, to: Int, sum: Double) -> Int {
        let step = from <= to ? 1 : -1
        let u = random.nextDouble() * sum
        var acc = 0.0, lastPositive = from
        for slot in stride(from: from, to: to, by: step) where w[slot] > 0 {
            acc += w[slot]
            lastPositive = slot
            if u < acc { break }
        }
        // Falls through with the last positive slot only when u rounded up to `sum`.
        return ids.map { Int($0[lastPositive]) } ?? lastPositive
    }
}

// MARK: - Scratch

/// Buffers sized to the vocabulary, allocated once per sampler.
private final class SamplerScratch: @unchecked Sendable {
    let capacity: Int
    let ids: UnsafeMutablePointer<Int32>        // (capacity) candidate token ids
    let weights: UnsafeMutablePointer<Double>   // (capacity) unnormalised probabilities, parallel to `ids`
    let counts: UnsafeMutablePointer<Int32>     // (capacity) occurrences in the penalty window; zero between calls
    let logits: UnsafeMutablePointer<Float>     // (capacity) copy of an array's logits

    init(capacity: Int) {
        self.capacity = capacity
        ids = .allocate(capacity: capacity)
        weights = .allocate(capacity: capacity)
        counts = .allocate(capacity: capacity)
        counts.initialize(repeating: 0, count: capacity)
        logits = .allocate(capacity: capacity)
    }

    deinit {
        ids.deallocate(); weights.deallocate(); counts.deallocate(); logits.deallocate()
    }
}

// MARK: - Selection helpers

/// Index of the largest logit, ties to the lowest id (NaN never wins; all -inf/NaN gives 0).
private func argmax(_ l: UnsafeMutablePointer<Float>, _ n: Int) -> Int {
    var best = 0, bestValue = -Float.infinity
    for i in 0..<n where l[i] > bestValue { best = i; bestValue = l[i] }
    return best
}

/// Writes the ids of the k largest logits (ties to the lower id, NaN lowest) to `ids[0..<k]` in heap order,
/// with a size-k min-heap: O(n log k), mostly one comparison per token.
private func selectTopK(_ l: UnsafeMutablePointer<Float>, _ n: Int, _ k: Int, _ ids: UnsafeMutablePointer<Int32>) {
    @inline(__always) func key(_ i: Int32) -> Float { let v = l[Int(i)]; return v.isNaN ? -.infinity : v }
    // a ranks above b: larger logit, or equal logit and lower id.
    @inline(__always) func above(_ a: Int32, _ b: Int32) -> Bool {
        let ka = key(a), kb = key(b)
        return ka > kb || (ka == kb && a < b)
    }
    func siftDown(_ start: Int) {   // min-heap: the root ranks lowest
        var i = start
        while true {
            let left = 2 * i + 1
            guard left < k else { return }
            var child = left
            if left + 1 < k && above(ids[child], ids[left + 1]) { child = left + 1 }
            guard above(ids[i], ids[child]) else { return }
            ids.swapAt(i, child)
            i = child
        }
    }
    for i in 0..<k { ids[i] = Int32(truncatingIfNeeded: i) }
    for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i) }
    var floor = key(ids[0])
    for i in k..<n {
        let v = l[i]
        // Later ids lose ties, so only a strictly larger logit enters.
        guard v > floor else { continue }
        ids[0] = Int32(truncatingIfNeeded: i)
        siftDown(0)
        floor = key(ids[0])
    }
}

/// Max-heap over slots `0..<count` ordered by (weight desc, id asc); `ids` and `w` move together.
private func buildMaxHeap(_ ids: UnsafeMutablePointer<Int32>, _ w: UnsafeMutablePointer<Double>, _ count: Int) {
    for i in stride(from: count / 2 - 1, through: 0, by: -1) { siftDownMax(ids, w, i, count) }
}

@inline(__always)
private func better(_ ids: UnsafeMutablePointer<Int32>, _ w: UnsafeMutablePointer<Double>, _ a: Int, _ b: Int) -> Bool {
    w[a] > w[b] || (w[a] == w[b] && ids[a] < ids[b])
}

private func siftDownMax(_ ids: UnsafeMutablePointer<Int32>, _ w: UnsafeMutablePointer<Double>,
                         _ start: Int, _ count: Int) {
    var i = start
    while true {
        let left = 2 * i + 1
        guard left < count else { return }
        var child = left
        if left + 1 < count && better(ids, w, left + 1, left) { child = left + 1 }
        guard better(ids, w, child, i) else { return }
        swapSlots(ids, w, i, child)
        i = child
    }
}

@inline(__always)
private func swapSlots(_ ids: UnsafeMutablePointer<Int32>, _ w: UnsafeMutablePointer<Double>, _ a: Int, _ b: Int) {
    ids.swapAt(a, b)
    let t = w[a]; w[a] = w[b]; w[b] = t
}

extension UnsafeMutablePointer where Pointee == Int32 {
    @inline(__always)
    fileprivate func swapAt(_ a: Int, _ b: Int) { let t = self[a]; self[a] = self[b]; self[b] = t }
}

// MARK: - Exponential

/// Turns widened logits into softmax weights in place: w = exp((w - max) · invT); +inf logits weigh 1.
private func softmaxWeights(_ w: UnsafeMutablePointer<Double>, _ count: Int, max: Double, inverseTemperature: Double) {
    guard max < .infinity else {
        for j in 0..<count { w[j] = w[j] == .infinity ? 1 : 0 }
        return
    }
    for j in 0..<count { w[j] = exponential((w[j] - max) * inverseTemperature) }
}

/// e^x for x <= 0 using only IEEE +, -, * in a fixed order, hence bit-identical on every machine (libm's `exp`
/// differs between platforms); branch-free so the loop above vectorises. exp(0) is exactly 1. Relative error
/// about 1e-15; x below -708 and NaN give 0.
@inline(__always)
private func exponential(_ x: Double) -> Double {
    let inRange = x >= -708
    let y = inRange ? x : -708
    // y = k·ln2 + r, |r| <= ln2/2: adding 1.5·2^52 rounds k to nearest and leaves it in the low mantissa bits.
    let shifted = y * 0x1.71547652b82fep0 + 0x1.8p52
    let k = shifted - 0x1.8p52
    let r = (y - k * 0x1.62e42fee00000p-1) - k * 0x1.a39ef35793c76p-33   // ln2 split so k·ln2Hi is exact
    // Taylor series to degree 12: truncation error < 1e-15 relative for |r| <= 0.347.
    var p = 1.0 / 479_001_600
    p = p * r + 1.0 / 39_916_800
    p = p * r + 1.0 / 3_628_800
    p = p * r + 1.0 / 362_880
    p = p * r + 1.0 / 40320
    p = p * r + 1.0 / 5040
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    // 2^k for k in -1021...0: the low bits of `shifted` hold 2^51 + k, so adding the bias and shifting
    // left by 52 leaves exactly (k + 1023) << 52.
    let scale = Double(bitPattern: (shifted.bitPattern &+ 1023) << 52)
    return inRange ? p * scale : 0
}
