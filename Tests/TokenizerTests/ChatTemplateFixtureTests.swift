import Foundation
import TesseraJinja
import TesseraTokenizer
import XCTest

/// Real chat templates (SmolLM2 from the model's GGUF, Llama 2 / 3 / 3.2, Mistral v0.2 / Nemo, Qwen2 / 2.5,
/// Zephyr = TinyLlama) and construct snippets, against what Python's jinja2 renders for them, set up as
/// transformers sets it up (Fixtures/make_chat_fixtures.py wrote Fixtures/chat_expected.json).
final class ChatTemplateFixtureTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    private func loadExpected() throws -> JinjaValue {
        let url = Self.fixtures.appendingPathComponent("chat_expected.json")
        let text = try String(contentsOf: url, encoding: .utf8)
        return try JinjaValue(json: text)
    }

    private func template(_ name: String) throws -> ChatTemplate {
        let url = Self.fixtures.appendingPathComponent("chat_templates/\(name).jinja")
        return try ChatTemplate(String(contentsOf: url, encoding: .utf8))
    }

    /// Checks one rendering against a fixture entry holding "expected", "error" (a raise_exception message)
    /// or "runtime_error" (any other jinja2 error).
    private func check(_ label: String, _ entry: JinjaValue, render: () throws -> String) {
        do {
            let output = try render()
            if let expected = entry["expected"]?.stringValue {
                XCTAssertEqual(output, expected, label)
            } else {
                XCTFail("\(label): rendered \(output.debugDescription) but jinja2 failed: \(entry["error"] ?? entry["runtime_error"] ?? .none)")
            }
        } catch let error as ChatTemplateError {
            switch (error, entry["error"]?.stringValue, entry["runtime_error"]) {
            case (.raised(_, let message), let expectedMessage?, _):
                XCTAssertEqual(message, expectedMessage, label)
            case (.runtime, nil, _?):
                break
            default:
                XCTFail("\(label): \(error); jinja2: \(entry["expected"] ?? entry["error"] ?? entry["runtime_error"] ?? .none)")
            }
        } catch {
            XCTFail("\(label): unexpected error \(error)")
        }
    }

    func testRealTemplatesMatchJinja2() throws {
        let fixture = try loadExpected()
        let cases = try XCTUnwrap(fixture["cases"]?.listValue)
        let conversations = try XCTUnwrap(fixture["conversations"])
        XCTAssertGreaterThanOrEqual(cases.count, 100)
        var templates: [String: ChatTemplate] = [:]
        var checkedNames = Set<String>()
        for entry in cases {
            let name = try XCTUnwrap(entry["template"]?.stringValue)
            let conversation = try XCTUnwrap(entry["conversation"]?.stringValue)
            guard case .dict(var context)? = entry["context"] else { return XCTFail("case without context") }
            context["messages"] = try XCTUnwrap(conversations[conversation])
            if templates[name] == nil { templates[name] = try template(name) }
            let chat = try XCTUnwrap(templates[name])
            let variables = Dictionary(uniqueKeysWithValues: context.pairs)
            check("\(name) \(conversation) gen=\(context["add_generation_prompt"] ?? .none)", entry) {
                try chat.render(context: variables)
            }
            checkedNames.insert(name)
        }
        XCTAssertEqual(checkedNames, ["smollm2", "llama2-chat", "llama3-instruct", "llama3.2-instruct",
                                      "mistral-instruct-v0.2", "mistral-nemo-instruct-2407", "qwen2-instruct",
                                      "qwen2.5-instruct", "zephyr"])
    }

    /// The plain `render(messages:addGenerationPrompt:bosToken:eosToken:)` gives the same text for every
    /// role/content conversation.
    func testMessagesAPIMatchesJinja2() throws {
        let fixture = try loadExpected()
        let conversations = try XCTUnwrap(fixture["conversations"])
        var checked = 0
        for entry in try XCTUnwrap(fixture["cases"]?.listValue) {
            let context = try XCTUnwrap(entry["context"])
            guard context["tools"] == JinjaValue.none, context["date_string"] == nil else { continue }
            let name = try XCTUnwrap(entry["template"]?.stringValue)
            let conversation = try XCTUnwrap(entry["conversation"]?.stringValue)
            let messages = try XCTUnwrap(conversations[conversation]?.listValue).map {
                ChatMessage(role: $0["role"]?.stringValue ?? "", content: $0["content"]?.stringValue ?? "")
            }
            let chat = try template(name)
            let addGenerationPrompt = context["add_generation_prompt"] == .bool(true)
            check("\(name) \(conversation) gen=\(addGenerationPrompt)", entry) {
                try chat.render(messages: messages, addGenerationPrompt: addGenerationPrompt,
                                bosToken: context["bos_token"]?.stringValue, eosToken: context["eos_token"]?.stringValue)
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 90)
    }

    func testConstructSnippetsMatchJinja2() throws {
        let fixture = try loadExpected()
        let snippets = try XCTUnwrap(fixture["snippets"]?.listValue)
        XCTAssertGreaterThanOrEqual(snippets.count, 60)
        for entry in snippets {
            let name = try XCTUnwrap(entry["name"]?.stringValue)
            let source = try XCTUnwrap(entry["template"]?.stringValue)
            guard case .dict(let context)? = entry["context"] else { return XCTFail("\(name): no context") }
            let variables = Dictionary(uniqueKeysWithValues: context.pairs)
            check(name, entry) { try ChatTemplate(source).render(context: variables) }
        }
    }
}
