import Foundation
import TesseraJinja
import TesseraTokenizer
import XCTest

/// The public ChatTemplate API: what `render(messages:...)` puts in the context, token handling, reuse.
final class ChatTemplateTests: XCTestCase {
    private func smolLM2Template() throws -> ChatTemplate {
        let url = ChatTemplateFixtureTests.fixtures.appendingPathComponent("chat_templates/smollm2.jinja")
        return try ChatTemplate(String(contentsOf: url, encoding: .utf8))
    }

    func testSmolLM2SingleUserMessage() throws {
        let chat = try smolLM2Template()
        let text = try chat.render(messages: [ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true,
                                   bosToken: "<|im_start|>", eosToken: "<|im_end|>")
        XCTAssertEqual(text, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                       + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        let own = try chat.render(messages: [ChatMessage(role: "system", content: "Be brief."),
                                             ChatMessage(role: "user", content: "Hi")],
                                  addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        XCTAssertEqual(own, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n")
    }

    func testMessagesContextMatchesTransformers() throws {
        let chat = try ChatTemplate("{{ tools is defined }} {{ tools is none }} {{ documents is none }} [{{ bos_token }}] {{ eos_token }} {{ add_generation_prompt }} {{ messages|length }} {{ messages[0].role }}:{{ messages[0]['content'] }}")
        XCTAssertEqual(try chat.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: true,
                                       bosToken: nil, eosToken: "</s>"),
                       "True True True [] </s> True 1 user:x")
        let empty = try ChatTemplate("[{{ bos_token }}] [{{ eos_token }}] {{ add_generation_prompt }} {{ messages|length }}")
        XCTAssertEqual(try empty.render(messages: [], addGenerationPrompt: false, bosToken: "<s>", eosToken: nil),
                       "[<s>] [] False 0")
    }

    func testContentIsNeverInterpretedAsTemplate() throws {
        let chat = try ChatTemplate("{% for m in messages %}{{ m.content }}{% endfor %}")
        let content = "{{ 1 + 1 }} {% if %} {# x #} \\n 'quote\" 🙂"
        XCTAssertEqual(try chat.render(messages: [ChatMessage(role: "user", content: content)], addGenerationPrompt: false,
                                       bosToken: nil, eosToken: nil), content)
    }

    func testRenderContextWithExtraVariables() throws {
        let chat = try ChatTemplate("{% for m in messages %}{{ m.role }}{% if m.tool_calls %}[{{ m.tool_calls[0].function.name }}({{ m.tool_calls[0].function.arguments|tojson }})]{% endif %};{% endfor %}{{ enable_thinking }}")
        let messages: JinjaValue = [
            ["role": "user", "content": "weather?"],
            ["role": "assistant", "content": nil,
             "tool_calls": [["function": ["name": "get_weather", "arguments": ["city": "Paris"]]]]],
        ]
        XCTAssertEqual(try chat.render(context: ["messages": messages, "enable_thinking": false]),
                       #"user;assistant[get_weather({"city": "Paris"})];False"#)
    }

    func testTemplateIsReusableAndSendable() throws {
        let chat = try smolLM2Template()
        XCTAssertTrue(chat.source.hasPrefix("{% for message in messages %}"))
        let expected = try chat.render(messages: [ChatMessage(role: "user", content: "0")], addGenerationPrompt: true,
                                       bosToken: nil, eosToken: nil)
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 8)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let text = try? chat.render(messages: [ChatMessage(role: "user", content: "\(i)")], addGenerationPrompt: true,
                                        bosToken: nil, eosToken: nil)
            results[i] = text == expected.replacingOccurrences(of: "user\n0", with: "user\n\(i)")
        }
        XCTAssertEqual(Array(results), Array(repeating: true, count: 8))
    }

    func testNamespaceStateDoesNotLeakBetweenRenders() throws {
        let chat = try ChatTemplate("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}")
        let two = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "assistant", content: "b")]
        XCTAssertEqual(try chat.render(messages: two, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "2")
        XCTAssertEqual(try chat.render(messages: two, addGenerationPrompt: false, bosToken: nil, eosToken: nil), "2")
    }

    func testErrorDescriptions() {
        XCTAssertEqual(ChatTemplateError.unsupported(line: 3, construct: "tag 'call'").description,
                       "chat template: unsupported tag 'call' at line 3")
        XCTAssertEqual(ChatTemplateError.raised(line: 1, message: "Conversation roles must alternate").description,
                       "chat template raised an exception at line 1: Conversation roles must alternate")
        XCTAssertEqual(ChatMessage(role: "user", content: "x"), ChatMessage(role: "user", content: "x"))
    }
}
