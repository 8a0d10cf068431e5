import Foundation

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

/// The rows of MLflow's JSON forms (`JSONSerialization`'s values), as pandas would read them.
extension MLflowRows {
    /// `{"columns": [...], "data": [[...], ...], "index": [...]}`, pandas' `split` orient; a row
    /// may be a bare value when there is one column. Without `columns`, columns are positions.
    static func split(_ input: Any) throws(MLflowError) -> MLflowRows {
        guard let split = input as? [String: Any] else {
            throw .badRequest("Dataframe split format must be a dictionary. Got \(kind(of: input)).")
        }
        let keys = Set(split.keys)
        guard keys.contains("data"), keys.isSubset(of: ["columns", "data", "index"]) else {
            throw .badRequest("Dataframe split format must have 'data' field and optionally 'columns' and 'index' fields. Got \(MLflowRequest.names(keys.sorted())).")
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
            guard columns.count <= MLflowRequest.maxColumns else { throw tooManyColumns(columns.count) }
            rows.append(record.mapValues(cell))
        }
        return .table(columns: columns.sorted(), rows: rows)
    }

    private static func checkColumns(_ columns: [String]) throws(MLflowError) {
        guard columns.count <= MLflowRequest.maxColumns else { throw tooManyColumns(columns.count) }
        guard Set(columns).count == columns.count else {
            throw .badRequest("a column is named twice in \(MLflowRequest.names(columns)); name each once.")
        }
    }

    private static func tooManyColumns(_ count: Int) -> MLflowError {
        .badRequest("the request has \(count) columns; at most \(MLflowRequest.maxColumns) are read.")
    }

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
}
