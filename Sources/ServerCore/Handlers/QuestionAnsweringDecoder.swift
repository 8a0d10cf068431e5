import Foundation

/// The answer of one question from its windows' start and end logits.
///
/// `pipeline` is the `transformers` question-answering pipeline's postprocessing (`top_k=1`,
/// `handle_impossible_answer=False`, `align_to_words=True`), step by step, in float32 as numpy does it:
///
/// 1. per window, positions that cannot answer (the question, the `[SEP]`s) get the logit −10000;
///    softmax of the start logits and of the end logits; the first `[CLS]`'s probabilities set to 0;
/// 2. the best span (start ≤ end < start + `maxAnswerLength`), scored start × end probability; the
///    first of equal scores in (start, end) order; a window whose best span is not made of candidate
///    positions has no answer;
/// 3. the best of the windows' answers (the first window's of equal scores);
/// 4. its characters: from the start of the word of the start token to the end of the word of the
///    end token, the word looked up among the window's context tokens (a token without a word, or
///    a word not found, falls back to the tokens' own offsets: (0, 0) for `[CLS]`), the answer the
///    context's substring there.
///
/// `argmax` is the MLflow write-up's (USE-CASES.md): argmax of the start logits and of the end logits over the first window's
/// tokens, the ids from the one to the other decoded as the tokenizer decodes them ("" when the end
/// comes before the start).
enum QuestionAnsweringDecoder {
    /// The pipeline's answer.
    struct Answer: Equatable, Sendable {
        var text: String
        var score: Float
        /// Offsets in the context, in Unicode scalars (Python's string indices).
        var start: Int
        var end: Int

        /// `{"answer": "…", "score": 0.93, "start": 11, "end": 15}`.
        var json: String {
            "{\"answer\":\(ClassProbabilities.jsonString(text)),\"score\":\(score.description),\"start\":\(start),\"end\":\(end)}"
        }

        /// The answer when no window has one, which cannot happen (every window's `[CLS]` is a
        /// candidate, and its span wins when all others score 0): nothing, at 0.
        static let empty = Answer(text: "", score: 0, start: 0, end: 0)
    }

    /// The pipeline's answer for `encoding`, from its windows' logits.
    /// - Parameters:
    ///   - start: each window's start logits, at least as long as its row.
    ///   - end: each window's end logits.
    static func pipelineAnswer(_ encoding: QuestionAnsweringEncoding, start: [ArraySlice<Float>], end: [ArraySlice<Float>],
                               maxAnswerLength: Int) -> Answer {
        var best: (window: Int, start: Int, end: Int, score: Float)?
        for window in encoding.windows.indices {
            let length = encoding.length(of: window)
            let candidates = (0..<length).map { encoding.isCandidate($0, of: window) }
            let startProbabilities = probabilities(start[window], length: length, candidates: candidates)
            let endProbabilities = probabilities(end[window], length: length, candidates: candidates)
            let span = bestSpan(startProbabilities, endProbabilities, maxAnswerLength: maxAnswerLength)
            guard candidates[span.start], candidates[span.end] else { continue }
            if let current = best, span.score <= current.score { continue }
            best = (window, span.start, span.end, span.score)
        }
        guard let best else { return .empty }
        let (start, end) = characters(encoding, window: best.window, start: best.start, end: best.end)
        let count = encoding.context.count
        let lower = min(max(start, 0), count)
        let upper = min(max(end, 0), count)
        var text = String()
        if lower < upper { text.unicodeScalars.append(contentsOf: encoding.context[lower..<upper]) }
        return Answer(text: text, score: best.score, start: start, end: end)
    }

    /// The write-up's answer: the text of the ids from the start logits' argmax to the end logits'.
    static func argmaxAnswer(_ encoding: QuestionAnsweringEncoding, start: ArraySlice<Float>, end: ArraySlice<Float>,
                             tokenizer: WordPieceTokenizer) -> String {
        let length = encoding.length(of: 0)
        let first = argmax(start.prefix(length))
        let last = argmax(end.prefix(length))
        guard first <= last else { return "" }
        return tokenizer.decode(Array(encoding.inputIDs(of: 0)[first...last]))
    }

    /// The softmax of a window's logits, non-candidates at −10000, the first `[CLS]` then set to 0.
    static func probabilities(_ logits: ArraySlice<Float>, length: Int, candidates: [Bool]) -> [Float] {
        var masked = zip(logits.prefix(length), candidates).map { $1 ? $0 : -10000 }
        let maximum = masked.max() ?? 0
        var sum: Double = 0
        for index in masked.indices {
            masked[index] = expf(masked[index] - maximum)
            sum += Double(masked[index])
        }
        let total = Float(sum)
        var result = masked.map { $0 / total }
        if !result.isEmpty { result[0] = 0 }
        return result
    }

    /// numpy's argmax of the start × end outer product kept to start ≤ end < start + `maxAnswerLength`:
    /// the first greatest in (start, end) order, (0, 0) when all are 0.
    static func bestSpan(_ start: [Float], _ end: [Float], maxAnswerLength: Int) -> (start: Int, end: Int, score: Float) {
        var best = (start: 0, end: 0, score: Float(0))
        for first in start.indices where start[first] > 0 {
            for last in first..<min(end.count, first + maxAnswerLength) {
                let score = start[first] * end[last]
                if score > best.score { best = (first, last, score) }
            }
        }
        return best
    }

    /// The characters of the span `start...end` of a window's row, as the pipeline's `get_indices`
    /// finds them.
    static func characters(_ encoding: QuestionAnsweringEncoding, window: Int, start: Int, end: Int) -> (start: Int, end: Int) {
        let first = encoding.token(at: start, of: window)
        let last = encoding.token(at: end, of: window)
        if let startWord = word(of: first), let endWord = word(of: last),
           let startChars = characters(ofWord: startWord, encoding, window: window),
           let endChars = characters(ofWord: endWord, encoding, window: window) {
            return (startChars.start, endChars.end)
        }
        return (offsets(of: first).start, offsets(of: last).end)
    }

    private static func word(of token: QuestionAnsweringEncoding.RowToken) -> Int? {
        switch token {
        case .question(let token), .context(let token): return token.word
        case .structural: return nil
        }
    }

    private static func offsets(of token: QuestionAnsweringEncoding.RowToken) -> (start: Int, end: Int) {
        switch token {
        case .question(let token), .context(let token): return (token.start, token.end)
        case .structural: return (0, 0)
        }
    }

    /// The characters of the window's context tokens of word `word`, as HuggingFace's
    /// `word_to_chars(word, sequence_index=1)`: nil when the window has none.
    private static func characters(ofWord word: Int, _ encoding: QuestionAnsweringEncoding, window: Int) -> (start: Int, end: Int)? {
        let tokens = encoding.contextTokens[encoding.windows[window]]
        guard let first = tokens.firstIndex(where: { $0.word == word }),
              let last = tokens.lastIndex(where: { $0.word == word }) else { return nil }
        return (tokens[first].start, tokens[last].end)
    }

    /// The first index of the greatest value (torch's argmax).
    static func argmax(_ values: ArraySlice<Float>) -> Int {
        var best = values.startIndex
        for index in values.indices where values[index] > values[best] { best = index }
        return best - values.startIndex
    }
}
