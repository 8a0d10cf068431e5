/// A lexical pass over YAML text, run before Yams sees it, that refuses documents Yams could not
/// compose safely.
///
/// Yams' composer recurses once per nesting level (about 2 KiB of stack each), and a composed tree
/// is freed recursively too, so a document nested a few thousand levels deep (`[[[[…`, `- - - …`),
/// or one whose aliases chain deep subtrees into each other, overflows the stack and kills the
/// process. libyaml itself is iterative, so bounding the text's nesting before composing is enough.
///
/// The pass never under-estimates what libyaml will build:
/// - **Flow depth** (`[`, `{`) is tracked through every way libyaml could read the text: at each
///   quote, `#`, `|` or `>` the pass follows both the reading where it opens a quoted scalar,
///   comment or block scalar and the one where it does not, keeping the deepest count of each
///   reading (an apostrophe inside a plain scalar, `don't`, does not open a quote for libyaml).
///   A `]` only lowers the count of readings where it is not quoted.
/// - **Block depth**: libyaml opens a block collection only at a line's first token or just after
///   the compact indicators `- `, `? `, `: ` that begin a line, and keeps strictly increasing
///   indentation columns, each holding at most a mapping and an indentless sequence. So a line's
///   block depth is at most twice the number of such columns seen so far, up to its own, plus
///   those it opens itself.
/// - **Aliases** (`*name`) are counted wherever one could start; a line whose first character is
///   `#` can hold none.
///
/// The estimate can only be too high, by brackets inside strings or comments; real model
/// definitions stay far below ``YAMLDocument/maxDepth``.
enum YAMLPreScan {
    /// The first reason to refuse `text`, naming its line, or `nil` when it may be composed.
    static func check(_ text: String, maxDepth: Int, maxAliases: Int) -> ConfigIssue? {
        var scan = Scanner(maxDepth: maxDepth, maxAliases: maxAliases)
        return text.utf8.withContiguousStorageIfAvailable { scan.run($0) } ?? scan.run(Array(text.utf8))
    }

    /// The ways libyaml may be reading a byte; see ``YAMLPreScan``.
    private enum Mode: Int, CaseIterable {
        /// Outside any quoted scalar, comment or block scalar.
        case outside
        case singleQuoted
        /// Just read a `'` inside a single-quoted scalar: `''` is an escaped quote, else it closed.
        case singleQuoteSeen
        case doubleQuoted
        /// Just read a `\` inside a double-quoted scalar.
        case doubleEscape
        case comment
        case blockScalar
    }

    private struct Scanner {
        let maxDepth: Int
        let maxAliases: Int
        /// The deepest flow nesting of each reading at the current byte, by ``Mode``; -1: no reading
        /// is in that mode.
        var flow: [Int] = Mode.allCases.map { $0 == .outside ? 0 : -1 }
        /// The next byte's `flow`, reused so that no byte allocates.
        var next: [Int] = Mode.allCases.map { _ in -1 }
        /// Columns where some line opened (or could have opened) a block collection.
        var blockColumns: [Bool] = []
        /// The block estimate of the line where the open flow collection began.
        var carriedBlock = 0
        var aliases = 0
        var line = 1

        init(maxDepth: Int, maxAliases: Int) {
            self.maxDepth = maxDepth
            self.maxAliases = maxAliases
        }

        mutating func run<Bytes: RandomAccessCollection>(_ bytes: Bytes) -> ConfigIssue? where Bytes.Element == UInt8, Bytes.Index == Int {
            var start = bytes.startIndex
            while start < bytes.endIndex {
                var end = start
                var breakLength = 0
                while end < bytes.endIndex {
                    breakLength = Self.lineBreakLength(bytes, at: end)
                    if breakLength > 0 { break }
                    end += 1
                }
                if let issue = scanLine(bytes, start, end) { return issue }
                if breakLength > 0 { lineBreak() }
                start = end + breakLength
                line += 1
            }
            return nil
        }

        /// One line, without its break.
        private mutating func scanLine<Bytes: RandomAccessCollection>(
            _ bytes: Bytes, _ lineStart: Int, _ end: Int
        ) -> ConfigIssue? where Bytes.Element == UInt8, Bytes.Index == Int {
            // libyaml skips a byte-order mark at the start of a line, counting it as one column.
            var start = lineStart
            var columnShift = 0
            if end - start >= 3, bytes[start] == 0xEF, bytes[start + 1] == 0xBB, bytes[start + 2] == 0xBF {
                start += 3
                columnShift = 1
            }
            var first = start
            while first < end, bytes[first] == Self.space || bytes[first] == Self.tab { first += 1 }

            var block = 0
            if first < end {
                // The columns where this line may open block collections: its first token, and the
                // token after each leading `- `, `? ` or `: `.
                var candidates = [first - start + columnShift]
                var position = first
                while position < end, bytes[position] == UInt8(ascii: "-") || bytes[position] == UInt8(ascii: "?")
                        || bytes[position] == UInt8(ascii: ":"),
                      position + 1 == end || bytes[position + 1] == Self.space || bytes[position + 1] == Self.tab {
                    position += 1
                    while position < end, bytes[position] == Self.space || bytes[position] == Self.tab { position += 1 }
                    guard position < end else { break }
                    candidates.append(position - start + columnShift)
                    if candidates.count > maxDepth { break }
                }
                let firstColumn = candidates[0]
                var open = 0
                var column = 0
                while column <= firstColumn, column < blockColumns.count, open <= maxDepth {
                    if blockColumns[column] { open += 1 }
                    column += 1
                }
                block = 2 * (open + candidates.count)
                for candidate in candidates {
                    if candidate >= blockColumns.count {
                        blockColumns.append(contentsOf: repeatElement(false, count: candidate - blockColumns.count + 1))
                    }
                    blockColumns[candidate] = true
                }
            }
            // Inside a flow collection that began on an earlier line, that line's block depth still holds.
            if deepestFlow > 0 { block = max(block, carriedBlock) }
            carriedBlock = block
            if block + deepestFlow > maxDepth { return tooDeep() }

            let isCommentLine = first < end && bytes[first] == UInt8(ascii: "#")
            var index = start
            while index < end {
                let byte = bytes[index]
                if byte == UInt8(ascii: "*"), !isCommentLine, index + 1 < end, Self.isAnchorCharacter(bytes[index + 1]),
                   index == start || !Self.isAlphanumeric(bytes[index - 1]) {
                    aliases += 1
                    if aliases > maxAliases {
                        return ConfigIssue(
                            line: line, key: "(document)", problem: "uses more than \(maxAliases) aliases (*name)",
                            expected: "at most \(maxAliases) aliases; write the values out instead")
                    }
                }
                step(byte)
                if byte == UInt8(ascii: "["), block + deepestFlow > maxDepth { return tooDeep() }
                if byte == UInt8(ascii: "{"), block + deepestFlow > maxDepth { return tooDeep() }
                index += 1
            }
            return nil
        }

        private func tooDeep() -> ConfigIssue {
            ConfigIssue(line: line, key: "(document)", problem: "nests lists and mappings more than \(maxDepth) levels deep",
                        expected: "at most \(maxDepth) levels of nesting")
        }

        private var deepestFlow: Int { max(flow.max() ?? 0, 0) }

        private mutating func reach(_ mode: Mode, _ depth: Int) {
            next[mode.rawValue] = max(next[mode.rawValue], depth)
        }

        /// Makes `next` the current readings.
        private mutating func advance() {
            swap(&flow, &next)
            for index in next.indices { next[index] = -1 }
        }

        /// Every reading advanced over one byte that is not a line break.
        private mutating func step(_ byte: UInt8) {
            if !Self.isSpecial(byte), flow[Mode.singleQuoteSeen.rawValue] < 0, flow[Mode.doubleEscape.rawValue] < 0 {
                return  // an ordinary byte changes no reading, unless one just read `'` or `\` in a quote
            }
            func outside(_ depth: Int) {
                switch byte {
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    reach(.outside, depth + 1)
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    reach(.outside, max(depth - 1, 0))
                case UInt8(ascii: "'"):
                    reach(.outside, depth)
                    reach(.singleQuoted, depth)
                case UInt8(ascii: "\""):
                    reach(.outside, depth)
                    reach(.doubleQuoted, depth)
                case UInt8(ascii: "#"):
                    reach(.outside, depth)
                    reach(.comment, depth)
                case UInt8(ascii: "|"), UInt8(ascii: ">"):
                    reach(.outside, depth)
                    reach(.blockScalar, depth)
                default:
                    reach(.outside, depth)
                }
            }
            for mode in Mode.allCases {
                let depth = flow[mode.rawValue]
                guard depth >= 0 else { continue }
                switch mode {
                case .outside:
                    outside(depth)
                case .singleQuoted:
                    reach(byte == UInt8(ascii: "'") ? .singleQuoteSeen : .singleQuoted, depth)
                case .singleQuoteSeen:
                    if byte == UInt8(ascii: "'") { reach(.singleQuoted, depth) } else { outside(depth) }
                case .doubleQuoted:
                    switch byte {
                    case UInt8(ascii: "\\"): reach(.doubleEscape, depth)
                    case UInt8(ascii: "\""): reach(.outside, depth)
                    default: reach(.doubleQuoted, depth)
                    }
                case .doubleEscape:
                    reach(.doubleQuoted, depth)
                case .comment:
                    reach(.comment, depth)
                case .blockScalar:
                    reach(.blockScalar, depth)
                }
            }
            advance()
        }

        /// Every reading advanced over a line break: comments end, a quote seen last closed its
        /// scalar, and a block scalar may end at any line.
        private mutating func lineBreak() {
            for mode in Mode.allCases {
                let depth = flow[mode.rawValue]
                guard depth >= 0 else { continue }
                switch mode {
                case .outside, .singleQuoteSeen, .comment: reach(.outside, depth)
                case .singleQuoted: reach(.singleQuoted, depth)
                case .doubleQuoted, .doubleEscape: reach(.doubleQuoted, depth)
                case .blockScalar:
                    reach(.blockScalar, depth)
                    reach(.outside, depth)
                }
            }
            advance()
        }

        /// The bytes that change some reading: brackets, quotes, `\`, `#`, `|`, `>`.
        private static func isSpecial(_ byte: UInt8) -> Bool {
            switch byte {
            case UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "'"),
                 UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "#"), UInt8(ascii: "|"), UInt8(ascii: ">"):
                return true
            default:
                return false
            }
        }

        private static let space = UInt8(ascii: " ")
        private static let tab = UInt8(ascii: "\t")

        /// The length of the line break at `index` as libyaml reads them (`\r\n`, `\r`, `\n`, NEL,
        /// LS, PS), or 0.
        private static func lineBreakLength<Bytes: RandomAccessCollection>(
            _ bytes: Bytes, at index: Int
        ) -> Int where Bytes.Element == UInt8, Bytes.Index == Int {
            switch bytes[index] {
            case UInt8(ascii: "\n"):
                return 1
            case UInt8(ascii: "\r"):
                return index + 1 < bytes.endIndex && bytes[index + 1] == UInt8(ascii: "\n") ? 2 : 1
            case 0xC2:
                return index + 1 < bytes.endIndex && bytes[index + 1] == 0x85 ? 2 : 0
            case 0xE2:
                guard index + 2 < bytes.endIndex, bytes[index + 1] == 0x80 else { return 0 }
                return bytes[index + 2] == 0xA8 || bytes[index + 2] == 0xA9 ? 3 : 0
            default:
                return 0
            }
        }

        private static func isAlphanumeric(_ byte: UInt8) -> Bool {
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte)
                || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
        }

        /// libyaml's anchor and alias name characters.
        private static func isAnchorCharacter(_ byte: UInt8) -> Bool {
            isAlphanumeric(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }
}
