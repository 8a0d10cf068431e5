import Foundation

/// One question about one context, as a request asks it.
struct QuestionAnsweringPair: Sendable, Equatable {
    var question: String
    var context: String
}

/// The pairs of a `question_answering` request: a JSON object `{"question": "…", "context": "…"}`
/// (`"text"` for `"context"`, as the MLflow write-up's DataFrame names it), or a JSON list of 1 to
/// ``maxPairs`` such objects. The body is read as JSON whatever its `Content-Type`.
enum QuestionAnsweringInput {
    static let maxPairs = 64
    static let form = "send {\"question\": \"…\", \"context\": \"…\"} or a list of those"

    /// The request's pairs, and whether it sent a list (then the answer is a list too).
    static func pairs(of request: InferenceRequest) throws(ModelServerError) -> (pairs: [QuestionAnsweringPair], isList: Bool) {
        guard !request.body.isEmpty else { throw .invalidInput("empty body: \(form)") }
        guard String(validating: request.body, as: UTF8.self) != nil else {
            throw .invalidInput("the body is not valid UTF-8 text")
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(request.body), options: .fragmentsAllowed) else {
            throw .badRequest("the body is not JSON: \(form)")
        }
        if let object = json as? [String: Any] {
            return ([try pair(object, item: nil)], false)
        }
        guard let list = json as? [Any] else { throw .badRequest("the JSON body is neither an object nor a list: \(form)") }
        guard (1...maxPairs).contains(list.count) else {
            throw .badRequest("the list must hold 1 to \(maxPairs) questions, got \(list.count)")
        }
        var pairs: [QuestionAnsweringPair] = []
        for (index, element) in list.enumerated() {
            guard let object = element as? [String: Any] else {
                throw .badRequest("item \(index) of the list is not an object: \(form)")
            }
            pairs.append(try pair(object, item: index))
        }
        return (pairs, true)
    }

    /// One object's question and context; `item` names its place in a list for messages.
    private static func pair(_ object: [String: Any], item: Int?) throws(ModelServerError) -> QuestionAnsweringPair {
        let place = item.map { "item \($0) of the list" } ?? "the JSON body"
        guard let question = object["question"] else { throw .badRequest("\(place) has no \"question\"") }
        let contextKey: String
        switch (object["context"], object["text"]) {
        case (_?, nil): contextKey = "context"
        case (nil, _?): contextKey = "text"
        case (nil, nil): throw .badRequest("\(place) has no \"context\" (or \"text\")")
        case (_?, _?): throw .badRequest("\(place) has both \"context\" and \"text\"; send one")
        }
        return QuestionAnsweringPair(question: try text(question, key: "question", place: place),
                                     context: try text(object[contextKey], key: contextKey, place: place))
    }

    /// A non-empty string (the pipeline refuses empty ones; whitespace is a question like any other).
    private static func text(_ value: Any?, key: String, place: String) throws(ModelServerError) -> String {
        guard let text = value as? String else { throw .badRequest("\"\(key)\" of \(place) must be a string") }
        guard !text.isEmpty else { throw .invalidInput("\"\(key)\" of \(place) is empty") }
        return text
    }
}
