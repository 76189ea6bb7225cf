// Attention against its textbook form (one `dot` per position, softmax, one `axpy` per position): bit-identical,
// with GQA, head sizes with and without register paths, and lengths off the 4-position step.
import TesseraKernels
import XCTest

final class AttentionTests: XCTestCase {
    func testMatchesTextbookFormBitForBit() {
        var rng = Rand(77)
        for (headDim, length) in [(64, 1), (64, 7), (128, 9), (48, 6), (64, 33)] {
            let heads = 6, kvHeads = 2, kvStride = kvHeads * headDim + 3, scale = 1 / Float(headDim).squareRoot()
            let q = (0..<(heads * headDim)).map { _ in rng.float() }
            let k = (0..<(length * kvStride)).map { _ in rng.float() }
            let v = (0..<(length * kvStride)).map { _ in rng.float() }
            var scores = [Float](repeating: 0, count: length), out = [Float](repeating: .nan, count: heads * headDim)
            attention(query: q, keys: k, values: v, length: length, kvStride: kvStride, heads: heads, kvHeads: kvHeads,
                      headDim: headDim, scale: scale, scores: &scores, output: &out)
            var expected = [Float](repeating: 0, count: heads * headDim)
            for h in 0..<heads {
                let offset = (h / (heads / kvHeads)) * headDim
                var p = (0..<length).map { j in
                    dot(Array(q[(h * headDim)...]), Array(k[(j * kvStride + offset)...]), count: headDim) * scale
                }
                softmax(&p, count: length)
                var o = [Float](repeating: 0, count: headDim)
                for j in 0..<length { axpy(p[j], Array(v[(j * kvStride + offset)...]), &o, count: headDim) }
                expected.replaceSubrange((h * headDim)..<((h + 1) * headDim), with: o)
            }
            XCTAssertEqual(out.map(\.bitPattern), expected.map(\.bitPattern), "headDim \(headDim) length \(length)")
        }
    }

    /// The fast kernel at every level against the exact form, within float rounding of FMA sums and the vector exp.
    func testFastKernelAtEveryLevel() {
        var rng = Rand(78)
        for (headDim, length) in [(64, 1), (64, 37), (128, 20), (48, 9), (80, 17)] {
            let heads = 9, kvHeads = 3, kvStride = kvHeads * headDim + 1, scale = 1 / Float(headDim).squareRoot()
            let q = (0..<(heads * headDim)).map { _ in rng.float(2) }
            let k = (0..<(length * kvStride)).map { _ in rng.float(2) }
            let v = (0..<(length * kvStride)).map { _ in rng.float() }
            var scores = [Float](repeating: 0, count: length), exact = [Float](repeating: 0, count: heads * headDim)
            attention(query: q, keys: k, values: v, length: length, kvStride: kvStride, heads: heads, kvHeads: kvHeads,
                      headDim: headDim, scale: scale, scores: &scores, output: &exact)
            forEachLevel { level in
                var fast = [Float](repeating: .nan, count: heads * headDim + 1)
                attention(query: q, keys: k, values: v, length: length, kvStride: kvStride, heads: heads,
                          kvHeads: kvHeads, headDim: headDim, scale: scale, scores: &scores, output: &fast, mode: .fast)
                XCTAssertTrue(fast[heads * headDim].isNaN, "wrote past the output")
                for i in 0..<(heads * headDim) {
                    XCTAssertEqual(fast[i], exact[i], accuracy: 2e-5, "\(level) headDim \(headDim) length \(length) \(i)")
                }
            }
        }
    }
}
