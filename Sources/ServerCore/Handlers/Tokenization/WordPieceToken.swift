/// One WordPiece token of a text, and where it comes from (HuggingFace's offsets mapping and word id).
public struct WordPieceToken: Sendable, Equatable {
    public var id: Int64
    /// The first scalar of the original text the token covers (Unicode scalar offsets, as Python
    /// indexes a `str`).
    public var start: Int
    /// One past its last scalar: the token covers `start..<end`.
    public var end: Int
    /// The word it belongs to, counted from 0 in the text: the pieces of one word share it.
    public var word: Int

    public init(id: Int64, start: Int, end: Int, word: Int) {
        self.id = id
        self.start = start
        self.end = end
        self.word = word
    }
}
