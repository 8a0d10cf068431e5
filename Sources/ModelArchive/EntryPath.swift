/// The rule every archive entry path must pass before anything is written.
enum EntryPath {
    struct Refusal: Error {
        let reason: UnsafeEntryReason
    }

    /// The components of a relative path that stays inside its folder, with empty and `.`
    /// components dropped. `a/./b//c` gives `[a, b, c]`; `./` gives `[]` (the folder itself).
    ///
    /// Backslashes count as separators too, so `..\evil` from a Windows tool is caught.
    /// - Throws: ``Refusal`` for `..`, an absolute path, a drive letter or a NUL byte.
    static func components(of raw: String) throws(Refusal) -> [String] {
        if raw.utf8.contains(0) { throw Refusal(reason: .invalidName) }
        if raw.hasPrefix("/") || raw.hasPrefix("\\") { throw Refusal(reason: .absolutePath) }
        let parts = raw.split(omittingEmptySubsequences: true) { $0 == "/" || $0 == "\\" }.map(String.init)
        if let first = parts.first, first.count == 2, first.hasSuffix(":"), first.first?.isLetter == true {
            throw Refusal(reason: .absolutePath)
        }
        var components: [String] = []
        for part in parts where part != "." {
            if part == ".." { throw Refusal(reason: .parentTraversal) }
            components.append(part)
        }
        return components
    }
}
