/// A question and its context as BERT pairs, `[CLS] question [SEP] context [SEP]`, one per window
/// of the context, as HuggingFace's fast tokenizer encodes them for the `transformers`
/// question-answering pipeline (`truncation="only_second"`, `max_length`, `stride`,
/// `return_overflowing_tokens=True`):
///
/// - the question is never cut; the context gets the room left, `maxLength - 3 - question tokens`;
/// - a context longer than that is split into windows of that many tokens, each starting `room -
///   docStride` tokens after the one before (so neighbours share `docStride` tokens), the last one
///   ending with the context;
/// - windows need more room than `docStride`: a question that leaves the context no more, when the
///   context does not fit, is refused (HuggingFace's tokenizer refuses it too).
///
/// Positions in a window's row: 0 is `[CLS]`, then the question, `[SEP]`, the window's context
/// tokens, `[SEP]`; `token_type_ids` are 0 for `[CLS] question [SEP]` and 1 for the rest.
struct QuestionAnsweringEncoding: Sendable {
    /// The context's scalars, to cut the answer from.
    let context: [Unicode.Scalar]
    let question: [WordPieceToken]
    let contextTokens: [WordPieceToken]
    /// The context tokens each window holds.
    let windows: [Range<Int>]
    let classifierID: Int64
    let separatorID: Int64

    /// - Parameters:
    ///   - docStride: tokens neighbouring windows share; nil keeps the first window only (the
    ///     context cut to fit, as a tokenizer called with `truncation="only_second"` and no overflow).
    /// - Throws: `.invalidInput` when the question leaves the context too little room.
    init(question: String, context: String, tokenizer: WordPieceTokenizer, maxLength: Int, docStride: Int?) throws(ModelServerError) {
        self.question = tokenizer.tokens(in: question)
        self.contextTokens = tokenizer.tokens(in: context)
        self.context = Array(context.unicodeScalars)
        self.classifierID = tokenizer.classifierID
        self.separatorID = tokenizer.separatorID
        let room = maxLength - 3 - self.question.count
        guard let windows = Self.windows(count: contextTokens.count, room: room, stride: docStride ?? 0) else {
            let most = maxLength - 4 - (docStride ?? 0)
            throw .invalidInput("the question is \(self.question.count) tokens long, too long for this model's windows "
                + "(maxLength \(maxLength)\(docStride.map { ", docStride \($0)" } ?? "")): with a context that does not fit "
                + "beside it, a question may have at most \(max(most, 0)) tokens")
        }
        self.windows = docStride == nil ? Array(windows.prefix(1)) : windows
    }

    /// The context tokens of each window: all of them when they fit in `room`, else windows of
    /// `room` tokens every `room - stride`; nil when `room` is not more than `stride`.
    static func windows(count: Int, room: Int, stride: Int) -> [Range<Int>]? {
        guard count > room else { return [0..<count] }
        guard room > stride else { return nil }
        var windows: [Range<Int>] = []
        var start = 0
        while true {
            let stop = min(start + room, count)
            windows.append(start..<stop)
            if stop == count { return windows }
            start += room - stride
        }
    }

    /// The row position of the window's first context token.
    var contextStart: Int { question.count + 2 }

    /// The tokens of window `window`'s row, padding excluded.
    func length(of window: Int) -> Int {
        question.count + 3 + windows[window].count
    }

    /// The `input_ids` of window `window`'s row, padding excluded.
    func inputIDs(of window: Int) -> [Int64] {
        var ids: [Int64] = [classifierID]
        ids.reserveCapacity(length(of: window))
        ids.append(contentsOf: question.lazy.map(\.id))
        ids.append(separatorID)
        ids.append(contentsOf: contextTokens[windows[window]].lazy.map(\.id))
        ids.append(separatorID)
        return ids
    }

    /// What stands at `position` of window `window`'s row.
    func token(at position: Int, of window: Int) -> RowToken {
        let contextPosition = position - contextStart
        if position > 0, position <= question.count {
            return .question(question[position - 1])
        }
        if contextPosition >= 0, contextPosition < windows[window].count {
            return .context(contextTokens[windows[window].lowerBound + contextPosition])
        }
        return .structural
    }

    /// Whether the pipeline lets position `position` of a window's row be part of an answer: the
    /// context's tokens, and every `[CLS]` (the first, whose probability it then sets to 0, and any
    /// written in the question, which it leaves as they are).
    func isCandidate(_ position: Int, of window: Int) -> Bool {
        switch token(at: position, of: window) {
        case .context: return true
        case .question(let token): return token.id == classifierID
        case .structural: return position == 0
        }
    }

    /// One position of a window's row.
    enum RowToken {
        /// `[CLS]`, the `[SEP]`s: no word, offsets (0, 0).
        case structural
        case question(WordPieceToken)
        case context(WordPieceToken)
    }
}
