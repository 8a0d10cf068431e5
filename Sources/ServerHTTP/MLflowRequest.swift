import Foundation
import ModelArchive

/// One cell of an MLflow request's rows.
enum MLflowCell: Sendable, Equatable {
    case text(String)
    /// JSON `null`, an empty CSV field, or a column a record does not have.
    case missing
    /// Any other JSON value, by its kind (`a number`, `a list`), for the message that refuses it.
    case other(String)
}

/// The rows of an MLflow request, as its form gives them.
enum MLflowRows: Sendable, Equatable {
    /// Named columns, and each row's cells by column name (a column a row lacks is missing).
    case table(columns: [String], rows: [[String: MLflowCell]])
    /// Bare values, one per row (`{"instances": ["…", "…"]}`): each is the handler's one input.
    case values([MLflowCell])

    var count: Int {
        switch self {
        case .table(_, let rows): rows.count
        case .values(let values): values.count
        }
    }
}

/// MLflow's scoring protocol (`mlflow models serve`, MLflow 2 and 3) as `/invocations` reads it:
/// `application/json` with exactly one of `dataframe_split`, `dataframe_records`, `instances` or
/// `inputs`, or `text/csv` with a header row.
///
/// Which bodies are MLflow's: every `text/csv` body; with `Content-Type: application/json`, any
/// body that is not a JSON object, or an object with one of the four keys; with no content type, an
/// object with one of the keys. Anything else (an image, plain text, `{"text": …}`, `{"url": …}`)
/// is not, and goes to the handler as on `/predictions`. An object with one of the keys sent as
/// another content type is refused with MLflow's 415, as MLflow refuses it.
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
        let isJSONType = mediaType == jsonType
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
            throw .badRequest("\(requiredFormat). Received \(kind(of: value)).")
        }
        let present = formats.filter { object[$0] != nil }
        guard !present.isEmpty else { return nil }
        guard isJSONType || mediaType == nil else {
            throw .unsupportedMediaType(
                "This predictor only supports the following content types: Types: ['\(csvType)', '\(jsonType)']. Got '\(Excerpt.of(contentType ?? ""))'.")
        }
        if let contentType { try checkParameters(contentType) }
        guard present.count == 1, let format = present.first, let input = object[format] else {
            throw .badRequest("\(requiredFormat). Received dictionary with input fields: \(names(present)).")
        }
        let rows: MLflowRows
        switch format {
        case "dataframe_split": rows = try split(input)
        case "dataframe_records": rows = try records(input)
        default: rows = try tensorInput(input, field: format)
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
            let pair = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
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

    // MARK: JSON forms

    /// `{"columns": [...], "data": [[...], ...], "index": [...]}`, pandas' `split` orient; a row
    /// may be a bare value when there is one column. Without `columns`, columns are positions.
    static func split(_ input: Any) throws(MLflowError) -> MLflowRows {
        guard let split = input as? [String: Any] else {
            throw .badRequest("Dataframe split format must be a dictionary. Got \(kind(of: input)).")
        }
        let keys = Set(split.keys)
        guard keys.contains("data"), keys.isSubset(of: ["columns", "data", "index"]) else {
            throw .badRequest("Dataframe split format must have 'data' field and optionally 'columns' and 'index' fields. Got \(names(keys.sorted())).")
        }
        guard let data = split["data"] as? [Any] else {
            throw .badRequest("dataframe_split's data must be a list of rows; got \(kind(of: split["data"] as Any)).")
        }
        var columns: [String]
        switch split["columns"] {
        case nil, is NSNull:
            let width = (data.first as? [Any])?.count ?? 1
            columns = (0..<width).map(String.init)
        case let given as [Any]:
            guard let names = given as? [String], names.count == given.count else {
                throw .badRequest("dataframe_split's columns must be a list of column names (strings).")
            }
            columns = names
        case let other?:
            throw .badRequest("dataframe_split's columns must be a list of column names; got \(kind(of: other)).")
        }
        try checkColumns(columns)
        var rows: [[String: MLflowCell]] = []
        rows.reserveCapacity(data.count)
        for (index, entry) in data.enumerated() {
            let values = entry as? [Any] ?? [entry]
            guard values.count == columns.count else {
                throw .badRequest(
                    "Provided dataframe_split field is not a valid dataframe representation in 'split' format: row \(index) has \(values.count) values for \(columns.count) columns.")
            }
            rows.append(Dictionary(uniqueKeysWithValues: zip(columns, values.map(cell))))
        }
        switch split["index"] {
        case nil, is NSNull: break
        case let index as [Any] where index.count == rows.count: break
        case let other?:
            throw .badRequest("dataframe_split's index must be a list of one label per row (\(rows.count)); got \((other as? [Any]).map { "\($0.count) labels" } ?? kind(of: other)).")
        }
        return .table(columns: columns, rows: rows)
    }

    /// `[{"column": value, …}, …]`, pandas' `records` orient.
    static func records(_ input: Any) throws(MLflowError) -> MLflowRows {
        guard let list = input as? [Any] else {
            throw .badRequest("Dataframe records format must be a list of records. Got \(kind(of: input)).")
        }
        return try table(list, field: "dataframe_records")
    }

    /// `instances` or `inputs` (TensorFlow Serving's forms as MLflow reads them): a list of values
    /// (each the handler's one input), a list of records, or an object of columns whose lists
    /// have one entry per row (a column given as a single value applies to every row).
    static func tensorInput(_ input: Any, field: String) throws(MLflowError) -> MLflowRows {
        if let list = input as? [Any] {
            let recordCount = list.count(where: { $0 is [String: Any] })
            if recordCount == 0 { return .values(list.map(cell)) }
            guard recordCount == list.count else {
                throw .badRequest("\(field) mixes records (objects) with other values; send a list of one kind.")
            }
            return try table(list, field: field)
        }
        guard let columns = input as? [String: Any] else {
            throw .invalidValue("\(field) must be a list (of values or of records) or an object of columns; got \(kind(of: input)).")
        }
        let names = columns.keys.sorted()
        try checkColumns(names)
        let lengths = Set(names.compactMap { (columns[$0] as? [Any])?.count })
        guard lengths.count <= 1 else {
            // MLflow's schema enforcement refuses them (its own length check sees only the signature's columns).
            throw .invalidValue("The length of values for each input/column name are not the same (\(lengths.sorted())).")
        }
        let count = lengths.first ?? 1
        var rows = [[String: MLflowCell]](repeating: [:], count: count)
        for name in names {
            let value = columns[name] as Any
            if let list = value as? [Any] {
                for (row, entry) in list.enumerated() { rows[row][name] = cell(entry) }
            } else {
                let single = cell(value)
                for row in rows.indices { rows[row][name] = single }
            }
        }
        return .table(columns: names, rows: rows)
    }

    /// Records (objects) as a table whose columns are all the records' keys.
    private static func table(_ list: [Any], field: String) throws(MLflowError) -> MLflowRows {
        var columns = Set<String>()
        var rows: [[String: MLflowCell]] = []
        rows.reserveCapacity(list.count)
        for (index, entry) in list.enumerated() {
            guard let record = entry as? [String: Any] else {
                throw .badRequest("\(field)[\(index)] is \(kind(of: entry)), not a record (an object of column values).")
            }
            columns.formUnion(record.keys)
            guard columns.count <= maxColumns else { throw tooManyColumns(columns.count) }
            rows.append(record.mapValues(cell))
        }
        return .table(columns: columns.sorted(), rows: rows)
    }

    private static func checkColumns(_ columns: [String]) throws(MLflowError) {
        guard columns.count <= maxColumns else { throw tooManyColumns(columns.count) }
        guard Set(columns).count == columns.count else {
            throw .badRequest("a column is named twice in \(names(columns)); name each once.")
        }
    }

    private static func tooManyColumns(_ count: Int) -> MLflowError {
        .badRequest("the request has \(count) columns; at most \(maxColumns) are read.")
    }

    // MARK: Values

    static func cell(_ value: Any) -> MLflowCell {
        switch value {
        case let text as String: .text(text)
        case is NSNull: .missing
        default: .other(kind(of: value))
        }
    }

    /// A JSON value's kind, for messages.
    static func kind(of value: Any) -> String {
        switch value {
        case is String: "a string"
        case is NSNull: "null"
        case is [Any]: "a list"
        case is [String: Any]: "a dictionary"
        default: "a number or boolean"
        }
    }

    /// Column names for a message: at most ten, each cut short.
    static func names(_ columns: [String]) -> String {
        let shown = columns.prefix(10).map { "'\(Excerpt.of($0, limit: 40))'" }
        return "[" + shown.joined(separator: ", ") + (columns.count > 10 ? ", … \(columns.count - 10) more" : "") + "]"
    }

    private static func isJSONSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }
}
