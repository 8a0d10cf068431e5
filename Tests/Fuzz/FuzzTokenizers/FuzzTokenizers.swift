import FuzzSupport
import ServerCore

/// The text classifier's and question answering's tokenizers on any text: WordPiece (BERT's basic
/// tokenizer, then greedy longest-match pieces) in its four lowercase/strip-accents settings, and
/// torchtext's `basic_english` words looked up in a word vocabulary. Invariants: every id is in
/// the vocabulary, `encode` keeps within `maxLength` (at least `[CLS] [SEP]`), and every token's
/// offsets lie within the text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenizers(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = FuzzDriver.bytes(data, size)
    guard let setting = input.first else { return 0 }
    let text = String(decoding: input.dropFirst(), as: UTF8.self)
    let maxLength = Int(setting >> 2)
    let wordPiece = wordPieceTokenizers[Int(setting & 3)]

    let ids = wordPiece.encode(text, maxLength: maxLength)
    guard ids.count >= 2, ids.count <= max(maxLength, 2), ids.first == wordPiece.classifierID,
        ids.last == wordPiece.separatorID
    else {
        FuzzDriver.violated("WordPiece encode gave \(ids.count) ids for maxLength \(maxLength)")
    }
    checkRange(ids, size: wordPiece.vocabularySize, "WordPiece encode")
    let pieces = wordPiece.pieceIDs(text)
    checkRange(pieces, size: wordPiece.vocabularySize, "WordPiece pieceIDs")
    let scalars = text.unicodeScalars.count
    for token in wordPiece.tokens(in: text) {
        guard token.start >= 0, token.start <= token.end, token.end <= scalars, token.id >= 0,
            token.id < Int64(wordPiece.vocabularySize)
        else {
            FuzzDriver.violated("WordPiece token \(token) outside a text of \(scalars) scalars")
        }
    }
    _ = wordPiece.decode(pieces)

    let words = wordTokenizer.encode(text, maxLength: maxLength)
    guard words.count <= maxLength else {
        FuzzDriver.violated("basic_english encode gave \(words.count) ids for maxLength \(maxLength)")
    }
    for id in words where !wordIDs.contains(id) {
        FuzzDriver.violated("basic_english encode gave id \(id), not in the vocabulary")
    }
    return 0
}

func checkRange(_ ids: [Int64], size: Int, _ what: String) {
    for id in ids where id < 0 || id >= Int64(size) {
        FuzzDriver.violated("\(what) gave id \(id) outside a vocabulary of \(size)")
    }
}

/// A small BERT-like vocabulary: the special tokens, every printable ASCII character alone and
/// as a continuation, and a few words, pieces, accented and CJK characters.
let vocabulary: [String] = {
    var tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    let ascii = (0x21...0x7E).compactMap { Unicode.Scalar($0).map { String(Character($0)) } }
    tokens += ascii + ascii.map { "##" + $0 }
    tokens += ["the", "un", "##aff", "##able", "hello", "world", "##s", "##ing", "café", "cafe", "naïve",
               "é", "##é", "ß", "中", "文", "日", "本", "한", "αβγ", "##αβγ", "ÿ", "[unused0]"]
    return tokens
}()

/// lowercase × strip accents.
let wordPieceTokenizers: [WordPieceTokenizer] = [(true, nil), (true, false), (false, true), (false, nil)].map {
    setting in
    do {
        return try WordPieceTokenizer(tokens: vocabulary, lowercase: setting.0, stripAccents: setting.1)
    } catch {
        FuzzDriver.violated("the fuzz vocabulary is refused: \(error)")
    }
}

/// A word vocabulary like TorchServe's text classification example's.
let wordVocabulary: [String: Int64] = {
    let words = ["<unk>", "<pad>", "the", "a", "and", "of", "'", ".", ",", "!", "?", "(", ")", "don", "t", "s",
                 "café", "σας", "straße", "i̇stanbul", "ǆ", "<br", "/>"]
    return Dictionary(uniqueKeysWithValues: words.enumerated().map { ($1, Int64($0 * 3)) })
}()
let wordIDs = Set(wordVocabulary.values)
let wordTokenizer: WordVocabularyTokenizer = {
    do {
        return try WordVocabularyTokenizer(vocabulary: wordVocabulary)
    } catch {
        FuzzDriver.violated("the fuzz word vocabulary is refused: \(error)")
    }
}()

#if !FUZZING
@main
enum FuzzTokenizers {
    static func main() { FuzzDriver.replay(fuzzTokenizers) }
}
#endif
