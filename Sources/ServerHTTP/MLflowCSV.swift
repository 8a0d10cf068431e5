/// The `text/csv` bodies of MLflow's protocol, read as pandas' `read_csv` (which MLflow's scoring
/// server calls) reads what `DataFrame.to_csv()` writes: RFC 4180 fields separated by commas,
/// records by LF, CRLF or CR; a field in double quotes may hold commas, line breaks and `""` for a
/// quote. The first record names the columns; blank lines are skipped; a record with fewer fields
/// than the header leaves the rest missing, one with more is refused. As pandas does, an empty
/// field is missing, an unnamed column is `Unnamed: <position>`, a repeated name gets `.1`, `.2`,
/// a UTF-8 byte order mark is dropped, and text after a closing quote joins the field.
///
/// Values stay text: pandas' guesses (numbers; `NA`, `null` as missing) do not apply, which is
/// what MLflow does for a model whose signature declares string columns.
///
/// A reader of its own rather than a CSV package: the subset pandas writes is small, and this one
/// stops at `maxRows` and `maxColumns` while it reads.
enum MLflowCSV {
    /// The rows of a CSV body.
    /// - Throws: `MLflowError` 400 for text that is not UTF-8, no header, an unterminated quote,
    ///   a record with more fields than the header, or more rows or columns than allowed.
    static func rows(of body: [UInt8], maxRows: Int, maxColumns: Int) throws(MLflowError) -> MLflowRows {
        guard String(validating: body, as: UTF8.self) != nil else {
            throw .badRequest("Ensure that input is a valid UTF-8 encoded string.")
        }
        var reader = Reader(bytes: body.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(body.dropFirst(3)) : body, maxColumns: maxColumns)
        guard let header = try reader.next() else {
            throw .badRequest("Failed to parse the CSV body: no columns to parse; send a header row of column names.")
        }
        let columns = Self.columnNames(header.fields)
        var rows: [[String: MLflowCell]] = []
        while let record = try reader.next() {
            guard record.fields.count <= columns.count else {
                throw .badRequest("Failed to parse the CSV body: expected \(columns.count) fields in line \(record.line), saw \(record.fields.count).")
            }
            guard rows.count < maxRows else { throw MLflowRequest.tooManyRows(rows.count + 1, limit: maxRows) }
            var row: [String: MLflowCell] = [:]
            for (column, field) in zip(columns, record.fields) {
                row[column] = field.map { .text(String(decoding: $0, as: UTF8.self)) } ?? .missing
            }
            rows.append(row)
        }
        return .table(columns: columns, rows: rows)
    }

    /// Header fields as pandas names them: an empty one `Unnamed: <position>`, a repeated one
    /// with `.1`, `.2`… appended.
    static func columnNames(_ fields: [[UInt8]?]) -> [String] {
        var names: [String] = []
        var seen = Set<String>()
        for (position, field) in fields.enumerated() {
            let base = field.map { String(decoding: $0, as: UTF8.self) } ?? "Unnamed: \(position)"
            var name = base
            var suffix = 0
            while seen.contains(name) {
                suffix += 1
                name = "\(base).\(suffix)"
            }
            seen.insert(name)
            names.append(name)
        }
        return names
    }

    /// Reads one record at a time; a field is nil when it is empty.
    struct Reader {
        let bytes: [UInt8]
        let maxColumns: Int
        var position = 0
        var line = 1

        init(bytes: [UInt8], maxColumns: Int) {
            self.bytes = bytes
            self.maxColumns = maxColumns
        }

        private enum State {
            case fieldStart, unquoted, quoted, quoteInQuoted
        }

        /// The next record that is not a blank line, and the line it starts on; nil at the end.
        mutating func next() throws(MLflowError) -> (fields: [[UInt8]?], line: Int)? {
            while position < bytes.count {
                let start = line
                var fields: [[UInt8]?] = []
                var field: [UInt8] = []
                var quoted = false
                var state = State.fieldStart
                var ended = false
                func endField() throws(MLflowError) {
                    fields.append(field.isEmpty ? nil : field)
                    guard fields.count <= maxColumns else {
                        throw .badRequest("Failed to parse the CSV body: line \(start) has more than \(maxColumns) fields.")
                    }
                    field = []
                    quoted = false
                }
                while position < bytes.count, !ended {
                    let byte = bytes[position]
                    position += 1
                    let isBreak = byte == 0x0A || byte == 0x0D
                    // CRLF is one break.
                    let isCRLF = byte == 0x0D && position < bytes.count && bytes[position] == 0x0A
                    if isCRLF { position += 1 }
                    if isBreak { line += 1 }
                    switch state {
                    case .quoted:
                        if byte == UInt8(ascii: "\"") {
                            state = .quoteInQuoted
                        } else {
                            field.append(byte)
                            if isCRLF { field.append(0x0A) }
                        }
                    case .fieldStart, .unquoted, .quoteInQuoted:
                        if byte == UInt8(ascii: "\"") && state != .unquoted {
                            if state == .quoteInQuoted { field.append(byte) }
                            quoted = true
                            state = .quoted
                        } else if byte == UInt8(ascii: ",") {
                            try endField()
                            state = .fieldStart
                        } else if isBreak {
                            ended = true
                        } else {
                            field.append(byte)
                            state = .unquoted
                        }
                    }
                }
                if state == .quoted {
                    throw .badRequest("Failed to parse the CSV body: EOF inside string starting at line \(start).")
                }
                if fields.isEmpty, field.isEmpty, !quoted { continue }
                try endField()
                return (fields, start)
            }
            return nil
        }
    }
}
