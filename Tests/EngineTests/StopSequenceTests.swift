import TesseraEngine
import XCTest

/// Stop strings on streamed text, checked case by case and against a whole-text reference over random chunkings.
final class StopSequenceTests: XCTestCase {

    func testStopSplitAcrossFeeds() {
        var stops = StopSequences(["</s>"])
        XCTAssert(stops.feed("Hello<") == ("Hello", false))
        XCTAssert(stops.feed("/s") == ("", false))
        XCTAssert(stops.feed(">world") == ("", true))
        XCTAssertEqual(stops.matched, "</s>")
        XCTAssert(stops.feed("more") == ("", true))
        XCTAssertEqual(stops.flush(), "")
    }

    func testHeldBackTextIsReleasedWhenTheMatchFails() {
        var stops = StopSequences(["</s>"])
        XCTAssert(stops.feed("a <") == ("a ", false))
        XCTAssert(stops.feed("/") == ("", false))
        XCTAssert(stops.feed("b") == ("</b", false))
        XCTAssert(stops.feed("</") == ("", false))
        XCTAssertEqual(stops.flush(), "</")
        XCTAssertFalse(stops.isStopped)
        XCTAssertNil(stops.matched)
    }

    func testSeveralStopStrings() {
        var stops = StopSequences(["\n\n", "User:", "<|im_end|>"])
        XCTAssert(stops.feed("Answer: 42.\nUs") == ("Answer: 42.\n", false))
        XCTAssert(stops.feed("er: hi") == ("", true))
        XCTAssertEqual(stops.matched, "User:")

        var other = StopSequences(["\n\n", "User:"])
        XCTAssert(other.feed("one\n") == ("one", false))
        XCTAssert(other.feed("\ntwo") == ("", true))
        XCTAssertEqual(other.matched, "\n\n")
    }

    func testOverlappingPrefixes() {
        // The stop that completes first wins, whatever the chunking.
        var a = StopSequences(["abcd", "bc"])
        XCTAssert(a.feed("xabcd") == ("xa", true))
        XCTAssertEqual(a.matched, "bc")
        var b = StopSequences(["abcd", "bc"])
        XCTAssert(b.feed("xab") == ("x", false))
        XCTAssert(b.feed("cd") == ("a", true))
        // One stop a prefix of another: the shorter completes first.
        var c = StopSequences(["abc", "ab"])
        XCTAssert(c.feed("zabc") == ("z", true))
        XCTAssertEqual(c.matched, "ab")
        // Self-overlapping stop: the match may start inside what was held back.
        var d = StopSequences(["aab"])
        XCTAssert(d.feed("a") == ("", false))
        XCTAssert(d.feed("a") == ("", false))
        XCTAssert(d.feed("a") == ("a", false))
        XCTAssert(d.feed("b!") == ("", true))
        // Same end, longer stop first.
        var e = StopSequences(["b", "ab"])
        XCTAssert(e.feed("cab") == ("c", true))
        XCTAssertEqual(e.matched, "ab")
    }

    func testEmojiAndCJK() {
        var stops = StopSequences(["終わり", "🛑"])
        var out = ""
        for character in "日本語の文章。終わりです" {
            let (emit, stopped) = stops.feed(String(character))
            out += emit
            if stopped { break }
        }
        XCTAssertEqual(out, "日本語の文章。")
        XCTAssertEqual(stops.matched, "終わり")

        var emoji = StopSequences(["🛑"])
        XCTAssert(emoji.feed("go 🚀") == ("go 🚀", false))
        XCTAssert(emoji.feed("🛑 never") == ("", true))

        // A stop that begins a grapheme cluster: matching is on scalars, the cut may split the cluster.
        var family = StopSequences(["👩"])
        XCTAssert(family.feed("👨\u{200D}👩\u{200D}👧") == ("👨\u{200D}", true))
        // Combining marks arriving in the next chunk; scalars match exactly (no normalisation).
        var accent = StopSequences(["e\u{301}"])
        XCTAssert(accent.feed("cafe") == ("caf", false))
        XCTAssert(accent.feed("\u{301}!") == ("", true))
        var precomposed = StopSequences(["\u{E9}"])
        XCTAssert(precomposed.feed("cafe\u{301}") == ("cafe\u{301}", false))
    }

    func testFlushAndPassThrough() {
        var stops = StopSequences(["STOP"])
        XCTAssert(stops.feed("the end ST") == ("the end ", false))
        XCTAssertEqual(stops.flush(), "ST")
        XCTAssertEqual(stops.flush(), "")

        var none = StopSequences([])
        XCTAssert(none.feed("anything </s>") == ("anything </s>", false))
        XCTAssertEqual(none.flush(), "")
        var empty = StopSequences(["", "x"])
        XCTAssert(empty.feed("abc") == ("abc", false))
    }

    /// Random texts cut at random scalar boundaries: emitted + flushed text and the stop flag equal a reference
    /// computed on the whole text, and after every feed exactly the longest possible stop prefix is held back.
    func testRandomChunkingsMatchTheWholeTextReference() {
        let alphabet: [Unicode.Scalar] = ["a", "b", "\u{1F642}", "\u{65E5}", "\u{301}", " "]
        let stopStrings = ["ab", "b\u{1F642}a", "\u{65E5}\u{65E5}", "\u{1F642}\u{301}", "aaab"]
        let stopScalars = stopStrings.map { Array($0.unicodeScalars) }
        var random = RandomGenerator(seed: 2024)
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }

        for _ in 0..<400 {
            let text = (0..<(1 + pick(14))).map { _ in alphabet[pick(alphabet.count)] }
            let (expected, expectStop) = referenceCut(text, stopScalars)
            var stops = StopSequences(stopStrings)
            var out: [Unicode.Scalar] = [], fed: [Unicode.Scalar] = [], stopped = false
            var start = 0
            while start < text.count && !stopped {
                let end = min(text.count, start + 1 + pick(4))
                let chunk = Array(text[start..<end])
                fed += chunk
                let result = stops.feed(string(chunk))
                out += result.emit.unicodeScalars
                stopped = result.stopped
                if !stopped {
                    XCTAssertEqual(fed.count - out.count, longestHeldBack(fed, stopScalars), "text \(string(text))")
                }
                start = end
            }
            if !stopped { out += stops.flush().unicodeScalars }
            XCTAssertEqual(string(out), string(expected), "text \(string(text))")
            XCTAssertEqual(stopped, expectStop, "text \(string(text))")
        }
    }

    // MARK: - Reference

    /// Cut before the match that ends first (ties: the longest), searched on the whole text at once.
    private func referenceCut(_ text: [Unicode.Scalar], _ stops: [[Unicode.Scalar]]) -> ([Unicode.Scalar], Bool) {
        for end in stride(from: 1, through: text.count, by: 1) {
            let hits = stops.filter { $0.count <= end && Array(text[(end - $0.count)..<end]) == $0 }
            if let longest = hits.max(by: { $0.count < $1.count }) { return (Array(text[..<(end - longest.count)]), true) }
        }
        return (text, false)
    }

    private func longestHeldBack(_ fed: [Unicode.Scalar], _ stops: [[Unicode.Scalar]]) -> Int {
        for length in stride(from: fed.count, through: 1, by: -1) {
            let suffix = Array(fed.suffix(length))
            if stops.contains(where: { $0.count > length && Array($0.prefix(length)) == suffix }) { return length }
        }
        return 0
    }

    private func string(_ scalars: [Unicode.Scalar]) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}
