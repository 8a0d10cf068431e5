import Foundation
import ModelArchive
import ServerCore

/// MLflow's scoring protocol (`mlflow models serve`, MLflow 2 and 3) as `/invocations` reads it:
/// `application/json` with exactly one of `dataframe_split`, `dataframe_records`, `instances` or
/// `inputs`, or `text/csv` with a header row.
///
/// Which bodies are MLflow's: every `text/csv` body; with `Content-Type: application/json`, any
/// body that is not a JSON object (nor a PNG or JPEG sent with the wrong type), or an object with
/// one of the four keys; with no content type, an object with one of the keys. Anything else (an
/// image, plain text, `{"text": …}`, `{"url": …}`) is not, and goes to the handler as on
/// `/predictions`. An object with one of the keys sent as another content type is refused with
/// MLflow's 415, as MLflow refuses it.
enum MLflowRequest {
    /// MLflow's input fields, one of which a JSON body carries.
    static let formats = ["dataframe_split", "dataframe_records", "instances", "inputs"]
    static let jsonType = "application/json"
    static let csvType = "text/csv"
    /// The most columns a request may name; pandas has no limit, but every column is kept in memory.
    static let maxColumns = 1024

    /// The rows of a body in MLflow's protocol, or nil when the body is not in it.
    /// - Parameter maxRows: the most rows a request may hold (the model's queue capacity).
    /// - Throws: `MLflowError` (400 or 415, MLflow's form) for a body in MLflow's protocol that
    ///   cannot be read.
    static func rows(of body: [UInt8], contentType: String?, maxRows: Int) throws(MLflowError) -> MLflowRows? {
        let mediaType = contentType.map { mediaTypeAndParameters($0).mediaType }
        if mediaType == csvType {
            try checkParameters(contentType ?? "")
            return try MLflowCSV.rows(of: body, maxRows: maxRows, maxColumns: maxColumns)
        }
        let isJSONType = mediaType == jsonType && !ModelSignature.HandlerInput.isEncodedImage(body)
        guard isJSONType || body.first(where: { !isJSONSpace($0) }) == UInt8(ascii: "{") else { return nil }
        let value: Any
        do {
            value = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            guard isJSONType else { return nil }
            throw .badRequest("Ensure that input is a valid JSON formatted string (\(body.isEmpty ? "the body is empty" : "\(body.count) bytes that do not parse as JSON")).")
        }
        guard let object = value as? [String: Any] else {
            guard isJSONType else { return nil }
            throw .badRequest("\(requiredFormat). Received \(MLflowRows.kind(of: value)).")
        }
        let present = formats.filter { object[$0] != nil }
        guard !present.isEmpty else { return nil }
        guard mediaType == jsonType || mediaType == nil else {
            throw .unsupportedMediaType(
                "This predictor only supports the following content types: Types: ['\(csvType)', '\(jsonType)']. Got '\(Excerpt.of(contentType ?? ""))'.")
        }
        if let contentType { try checkParameters(contentType) }
        guard present.count == 1, let format = present.first, let input = object[format] else {
            throw .badRequest("\(requiredFormat). Received dictionary with input fields: \(names(present)).")
        }
        let rows: MLflowRows
        switch format {
        case "dataframe_split": rows = try MLflowRows.split(input)
        case "dataframe_records": rows = try MLflowRows.records(input)
        default: rows = try MLflowRows.tensorInput(input, field: format)
        }
        guard rows.count <= maxRows else { throw tooManyRows(rows.count, limit: maxRows) }
        return rows
    }

    static var requiredFormat: String {
        "The input must be a JSON dictionary with exactly one of the input fields \(names(formats))"
    }

    static func tooManyRows(_ count: Int, limit: Int) -> MLflowError {
        .badRequest("\(count) rows are more than the model's queue holds (job_queue_size \(limit)); send at most \(limit) per request.")
    }

    // MARK: Content type

    /// The media type, lowercased, and the parameters, names lowercased.
    static func mediaTypeAndParameters(_ contentType: String) -> (mediaType: String, parameters: [(name: String, value: String)]) {
        let parts = contentType.split(separator: ";", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let parameters = parts.dropFirst().filter { !$0.isEmpty }.map { part in
            let pair = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            return (name: pair[0].lowercased(), value: pair.count > 1 ? pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) : "")
        }
        return ((parts.first ?? "").lowercased(), parameters)
    }

    /// MLflow takes `charset=utf-8` and no other parameter.
    static func checkParameters(_ contentType: String) throws(MLflowError) {
        let parameters = mediaTypeAndParameters(contentType).parameters
        if let charset = parameters.first(where: { $0.name == "charset" }), charset.value.lowercased() != "utf-8" {
            throw .unsupportedMediaType("The scoring server only supports UTF-8")
        }
        let unexpected = parameters.map(\.name).filter { $0 != "charset" }
        guard unexpected.isEmpty else {
            throw .unsupportedMediaType("Unrecognized content type parameters: \(unexpected.map { Excerpt.of($0, limit: 40) }.joined(separator: ", ")).")
        }
    }

    // MARK: Messages

    /// Column names for a message: at most ten, each cut short.
    static func names(_ columns: [String]) -> String {
        let shown = columns.prefix(10).map { "'\(Excerpt.of($0, limit: 40))'" }
        return "[" + shown.joined(separator: ", ") + (columns.count > 10 ? ", … \(columns.count - 10) more" : "") + "]"
    }

    private static func isJSONSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}
