// The hand-written pre-tokenizer scanners against Swift Regex running the very regexes they implement.
import Foundation
import TesseraTokenizer
import XCTest

final class TokenizerSplitPatternTests: XCTestCase {
    private func regexPieces(_ pattern: String, _ text: String) throws -> [String] {
        let regex = try Regex(pattern).matchingSemantics(.unicodeScalar)
        return text.matches(of: regex).map { String(text.unicodeScalars[$0.range]) }
    }

    private func samples() throws -> [String] {
        let ref = try TokenizerFixtures.referenceFile("smollm2-135m-instruct-q4_1")
        var out = (ref.tokenizer ?? []).map(\.text)
        out.append(try TokenizerFixtures.text("ppl.txt"))
        out += [
            "I'm sure YOU'RE right, they'LL see it's 'quoted' and 'S or 'sx '",
            "tabs\tand\r\nwindows  \r\n  line ends\n\n\n  \t x",
            "numbers 1234567 1,000,000 ٣٤٥ ½ Ⅻ and x²",
            "punct!!! ...\n\n(parens) [brackets] {braces} a+b=c; \"dq\" — dash",
            "   leading and trailing   ", "\u{00A0}nbsp\u{2003}em\u{3000}ideographic ",
            "Ünïcödé ΑΒΓ Кириллица עברית العربية हिन्दी 日本語テキスト 한국어",
            "emoji 👍🏽👨‍👩‍👧 flags 🇫🇷 and ſ'ſ ",
            "'", "''", " '", "a", " ", "\n", "x\n", " \n ", "ab  ",
        ]
        return out
    }

    func testScannersMatchTheirRegexes() throws {
        let texts = try samples()
        for pattern in SplitPattern.allCases {
            for text in texts {
                XCTAssertEqual(pattern.split(text), try regexPieces(pattern.regex, text), "\(pattern): \(text.debugDescription)")
            }
        }
    }

    func testKnownRegexesAreRecognized() {
        for pattern in SplitPattern.allCases { XCTAssertEqual(SplitPattern(regex: pattern.regex), pattern) }
        XCTAssertNil(SplitPattern(regex: "\\s+"))
    }

    func testExamples() {
        XCTAssertEqual(SplitPattern.gpt2.split(" Hello  world"), [" Hello", " ", " world"])
        XCTAssertEqual(SplitPattern.llama3.split("x 12345!!\n\n"), ["x", " ", "123", "45", "!!\n\n"])
        XCTAssertEqual(SplitPattern.qwen2.split("IT'S 42"), ["IT", "'S", " ", "4", "2"])
    }
}
