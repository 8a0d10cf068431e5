import Foundation
import ModelArchive
import ServerCore

/// How the rows of an MLflow request become requests to a model's handler: the columns each
/// handler takes, the `/predictions` body one row sends, and the prediction its answer gives.
///
/// - `text_classifier`: `text`, the text itself. The prediction is the handler's answer,
///   `{"label": probability, …}`.
/// - `question_answering`: `question` and `text` (or `context`, as the handler names it), sent as
///   `{"question": …, "context": …}`. The prediction is the answer's `answer` string, as an MLflow
///   pyfunc that decodes the answer span returns it; `score`, `start` and `end` are on `/predictions`.
/// - the image handlers (`image_segmenter`, `image_classifier`, `object_detector`): `data` or `b64`,
///   a base64 PNG or JPEG, or `url`, sent as `{"url": …}` (the core fetches it). The prediction is the handler's JSON answer, or `{"b64": …}` for an image answer.
///
/// Bare values (`{"instances": ["…"]}`) are the one input of a text or image handler. Columns a
/// handler does not take are ignored, as MLflow ignores columns a model's signature does not name.
struct MLflowColumns: Sendable {
    enum Input: Sendable, Equatable {
        case text, question, image
    }

    /// A row as a `/predictions` request.
    struct RowRequest: Sendable, Equatable {
        var body: [UInt8]
        var contentType: String?
    }

    let input: Input
    /// The handler's name and the model's, for messages.
    let handler: String
    let model: String

    init(handler: HandlerKind, model: String) {
        self.handler = handler.rawValue
        self.model = model
        switch handler {
        case .textClassifier: input = .text
        case .questionAnswering: input = .question
        case .imageSegmenter, .imageClassifier, .objectDetector: input = .image
        }
    }

    /// The columns the handler takes, as a message names them.
    var expected: String {
        switch input {
        case .text: "text"
        case .question: "question and text (or context)"
        case .image: "data or b64 (a base64 PNG or JPEG) or url"
        }
    }

    /// Each row as a handler request, all checked before any is queued.
    /// - Throws: `MLflowError` 400: `INVALID_PARAMETER_VALUE` for missing columns or a value that is
    ///   not a string, `BAD_REQUEST` for base64 that is not.
    func requests(_ rows: MLflowRows) throws(MLflowError) -> [RowRequest] {
        switch rows {
        case .values(let values):
            guard input != .question else {
                throw .invalidValue(
                    "the \(handler) model \(model) takes rows with the columns \(expected); send dataframe_split, dataframe_records, or instances or inputs of records, not bare values.")
            }
            return try values.enumerated().map { (index, value) throws(MLflowError) in
                let text = try Self.string(value, column: "value", row: index)
                return input == .text ? Self.text(text) : try Self.image(base64: text, column: "value", row: index)
            }
        case .table(let columns, let rows):
            try check(columns: columns)
            return try rows.enumerated().map { (index, row) throws(MLflowError) in try request(row, index: index) }
        }
    }

    /// The prediction of a row: the handler's JSON answer (for a question, its `answer` string),
    /// `{"b64": …}` for any other answer.
    func prediction(_ answer: InferenceResponse) -> String {
        if input == .question,
           let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any],
           let text = object["answer"] as? String {
            return jsonString(text)
        }
        return KServeV1Inference.prediction(answer)
    }

    // MARK: Columns

    private var required: [[String]] {
        switch input {
        case .text: [["text"]]
        case .question: [["question"], ["text", "context"]]
        case .image: [["data", "b64", "url"]]
        }
    }

    /// Whether the request names every column the handler needs (MLflow's schema check).
    func check(columns: [String]) throws(MLflowError) {
        let named = Set(columns)
        guard required.allSatisfy({ !named.isDisjoint(with: $0) }) else {
            throw .invalidValue(
                "the \(handler) model \(model) takes the columns \(expected); the request has \(columns.isEmpty ? "none" : MLflowRequest.names(columns)).")
        }
    }

    private func request(_ row: [String: MLflowCell], index: Int) throws(MLflowError) -> RowRequest {
        switch input {
        case .text:
            return Self.text(try Self.string(row["text"] ?? .missing, column: "text", row: index))
        case .question:
            let question = try Self.string(row["question"] ?? .missing, column: "question", row: index)
            let (column, context) = try one(of: ["text", "context"], in: row, index: index)
            let body = "{\"question\":\(jsonString(question)),\"context\":\(jsonString(try Self.string(context, column: column, row: index)))}"
            return RowRequest(body: Array(body.utf8), contentType: MLflowRequest.jsonType)
        case .image:
            let (column, cell) = try one(of: ["data", "b64", "url"], in: row, index: index)
            let value = try Self.string(cell, column: column, row: index)
            guard column == "url" else { return try Self.image(base64: value, column: column, row: index) }
            return RowRequest(body: ImageURLRequest.body(for: value), contentType: MLflowRequest.jsonType)
        }
    }

    /// The one column of `names` a row gives a value in.
    private func one(of names: [String], in row: [String: MLflowCell], index: Int) throws(MLflowError) -> (String, MLflowCell) {
        let given = names.filter { row[$0].map { $0 != .missing } ?? false }
        guard given.count <= 1 else {
            throw .invalidValue("row \(index) has values in \(given.joined(separator: " and ")); the \(handler) model \(model) takes one of them.")
        }
        guard let name = given.first, let cell = row[name] else {
            throw .invalidValue("row \(index) has no value in \(names.joined(separator: ", ")); the \(handler) model \(model) takes the columns \(expected).")
        }
        return (name, cell)
    }

    // MARK: Values

    private static func string(_ cell: MLflowCell, column: String, row: Int) throws(MLflowError) -> String {
        switch cell {
        case .text(let text): return text
        case .missing: throw .invalidValue("row \(row) has no \(column).")
        case .other(let kind): throw .invalidValue("row \(row): \(column) is \(kind); send a string.")
        }
    }

    private static func text(_ text: String) -> RowRequest {
        RowRequest(body: Array(text.utf8), contentType: "text/plain; charset=utf-8")
    }

    private static func image(base64: String, column: String, row: Int) throws(MLflowError) -> RowRequest {
        guard let bytes = Data(base64Encoded: base64, options: .ignoreUnknownCharacters), !bytes.isEmpty else {
            throw .badRequest("row \(row): \(column) is not the base64 of a PNG or JPEG image (\(base64.utf8.count) characters).")
        }
        return RowRequest(body: [UInt8](bytes), contentType: nil)
    }
}
