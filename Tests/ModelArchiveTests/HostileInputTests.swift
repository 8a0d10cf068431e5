import Foundation
import Testing

@testable import ModelArchive

/// Inputs from an outside attack run that used to kill the process (an overflow trap, a stack
/// overflow) or cost seconds and gigabytes; each is generated here and must be refused with the
/// right error and a short message.
@Suite struct HostileInputTests {
    /// The issues `yaml` is refused with, as model-config.yaml.
    private func configIssues(
        _ yaml: String, messageLimit: Int = 1024, sourceLocation: SourceLocation = #_sourceLocation
    ) -> [ConfigIssue] {
        let error = expectArchiveError({ _ = try ModelConfig.parse(yaml: yaml) }, sourceLocation: sourceLocation)
        guard case .invalidConfig(_, let issues) = error else {
            Issue.record("expected invalidConfig, got \(String(describing: error))", sourceLocation: sourceLocation)
            return []
        }
        #expect(error.map { $0.description.utf8.count < messageLimit } == true, "message too long", sourceLocation: sourceLocation)
        return issues
    }

    private func tooDeep(line: Int) -> ConfigIssue {
        ConfigIssue(line: line, key: "(document)", problem: "nests lists and mappings more than 64 levels deep",
                    expected: "at most 64 levels of nesting")
    }

    private let le = ZipBuilder.le
    private let unlimited = ExtractionLimits(maxTotalBytes: .max)

    // MARK: Tar sizes

    @Test func paxSizeOfInt64MaxOnAFolder() throws {
        let base = try TemporaryFolder()
        let pax = TarBuilder.entry("PaxHeaders/dir", Array(TarBuilder.paxRecord("size", "9223372036854775807").utf8), type: "x")
        let folder = TarBuilder.header("model/dir/", type: "5")
        let afterAFile = try base.file("after.tar.gz", bytes: try TarBuilder.gzip(
            TarBuilder.entry("model/ok.txt", Array("fine".utf8)) + pax + folder + TarBuilder.end))
        #expect(refuseOpening(base, afterAFile) == .tooLarge(path: afterAFile.path, entry: "model/dir/", limit: 4 << 30))
        // With no size limit the running total would pass Int64.max.
        #expect(refuseOpening(base, afterAFile, limits: unlimited) == .tooLarge(path: afterAFile.path, entry: "model/dir/", limit: .max))

        // With no size limit, the skip over its data and padding would pass Int64.max.
        let nearTheTop = TarBuilder.entry("PaxHeaders/dir", Array(TarBuilder.paxRecord("size", "9223372036854775707").utf8), type: "x")
        let first = try base.file("first.tar", bytes: nearTheTop + folder + TarBuilder.end)
        #expect(refuseOpening(base, first, limits: unlimited) == .corrupt(
            path: first.path, detail: "entry \"model/dir/\" declares a size of 9223372036854775707 bytes, past any file"))
    }

    @Test func gnuBase256HugeSize() throws {
        let base = try TemporaryFolder()
        // 0x7FFF_FFFF_FFFF_FEFF, the largest size the base-256 reader takes.
        let huge: [UInt8] = [0x80, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF]
        let ok = TarBuilder.entry("model/ok.txt", Array("fine".utf8))
        let cases: [(String, [UInt8], String)] = [
            ("folder", TarBuilder.header("model/dir/", type: "5", sizeField: huge), "model/dir/"),
            ("file", TarBuilder.header("model/big.bin", sizeField: huge), "model/big.bin"),
            ("global", TarBuilder.header("pax_global_header", type: "g", sizeField: huge), "(tar metadata)"),
        ]
        for (name, header, entry) in cases {
            let archive = try base.file("\(name).tar", bytes: ok + header + TarBuilder.end)
            #expect(refuseOpening(base, archive) == .tooLarge(path: archive.path, entry: entry, limit: 4 << 30))
        }
        let first = try base.file("first.tar", bytes: TarBuilder.header("model/dir/", type: "5", sizeField: huge) + TarBuilder.end)
        #expect(refuseOpening(base, first, limits: unlimited) == .corrupt(
            path: first.path, detail: "entry \"model/dir/\" declares a size of 9223372036854775551 bytes, past any file"))
    }

    @Test func paxRecordLengthsThatDoNotFit() throws {
        let base = try TemporaryFolder()
        let records = ["001 path=x\n", "5 ab=", "9223372036854775807 path=x\n", "99999999999999999999999 path=x\n", "8 =\n"]
        for (index, record) in records.enumerated() {
            let tar = TarBuilder.entry("PaxHeaders/x", Array(record.utf8), type: "x")
                + TarBuilder.entry("model/ok.txt", Array("fine".utf8)) + TarBuilder.end
            let archive = try base.file("pax\(index).tar", bytes: tar)
            #expect(refuseOpening(base, archive) == .corrupt(path: archive.path, detail: "a pax header is damaged"), "\(record)")
        }
    }

    // MARK: Zip offsets

    @Test func zip64LocatorOffsetNearTheTop() throws {
        let base = try TemporaryFolder()
        var bytes = ZipBuilder.raw([.init(name: "a.txt", data: Array("fine".utf8))])
        bytes.removeLast(22)
        // A ZIP64 locator whose record offset is 2^64 - 16, and an end record that defers to it.
        bytes += le(0x0706_4B50, 4) + le(0, 4) + le(UInt64.max - 15, 8) + le(1, 4)
        bytes += le(0x0605_4B50, 4) + le(0, 4) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(0, 2)
        let archive = try base.file("evil.mar", bytes: bytes)
        #expect(refuseOpening(base, archive) == .corrupt(path: archive.path, detail: "its ZIP64 end-of-central-directory record is out of place"))
    }

    @Test func zip64RecordWithHugeCounts() throws {
        let base = try TemporaryFolder()
        var bytes = ZipBuilder.raw([.init(name: "a.txt", data: Array("fine".utf8))])
        bytes.removeLast(22)
        let recordOffset = UInt64(bytes.count)
        let anyCount = ExtractionLimits(maxEntryCount: .max)
        let cases: [(UInt64, UInt64, UInt64, ExtractionLimits)] = [
            (.max, .max, .max, .default), (1, .max, 0, .default), (1, 46, .max, .default), (1 << 62, 64, 0, anyCount),
        ]
        for (count, size, offset, limits) in cases {
            let record = le(0x0606_4B50, 4) + le(44, 8) + le(45, 2) + le(45, 2) + le(0, 4) + le(0, 4)
                + le(count, 8) + le(count, 8) + le(size, 8) + le(offset, 8)
            let tail = record + le(0x0706_4B50, 4) + le(0, 4) + le(recordOffset, 8) + le(1, 4)
                + le(0x0605_4B50, 4) + le(0, 4) + le(0xFFFF, 2) + le(0xFFFF, 2) + le(0xFFFF_FFFF, 4) + le(0xFFFF_FFFF, 4) + le(0, 2)
            let archive = try base.file("evil-\(count)-\(size).mar", bytes: bytes + tail)
            let error = refuseOpening(base, archive, limits: limits)
            if count > limits.maxEntryCount {
                #expect(error == .tooManyEntries(path: archive.path, limit: 10_000))
            } else {
                #expect(error == .corrupt(path: archive.path, detail: "its central directory lies outside the file"))
            }
        }
    }

    @Test func zip64LocalHeaderOffsetOnASymlink() throws {
        let base = try TemporaryFolder()
        // The ZIP64 extra field gives the local header offset as 2^64 - 1.
        let extra = le(0x0001, 2) + le(8, 2) + le(UInt64.max, 8)
        let link = ZipBuilder.RawEntry(name: "link", data: Array("../../etc".utf8), madeBy: 3 << 8 | 20,
                                       externalAttributes: 0o120777 << 16, offsetField: 0xFFFF_FFFF, extra: extra)
        let archive = try base.file("link.mar", bytes: ZipBuilder.raw([link]))
        #expect(refuseOpening(base, archive) == .unsafeEntry(path: archive.path, entry: "link", reason: .symbolicLink(target: "?")))

        var file = link
        file.name = "big.bin"
        file.externalAttributes = 0o100644 << 16
        let plain = try base.file("plain.mar", bytes: ZipBuilder.raw([file]))
        #expect(refuseOpening(base, plain) == .corrupt(path: plain.path, detail: "the local header of \"big.bin\" is missing"))
    }

    @Test func readsWithHugeCountsOrOffsets() throws {
        let base = try TemporaryFolder()
        let file = try InputFile(try base.file("small", "0123456789"), role: "test file")
        #expect(try file.read(count: .max, at: 0) == Array("0123456789".utf8))
        #expect(try file.read(count: .max, at: 8) == Array("89".utf8))
        #expect(try file.read(count: 10, at: .max).isEmpty)
        #expect(try file.read(count: 10, at: -5).isEmpty)
        var buffer = [UInt8](repeating: 0, count: 4)
        #expect(try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: .max - 1) } == 0)
    }

    // MARK: YAML nesting

    @Test func deepFlowNesting() {
        let depth = 200_000
        let open = String(repeating: "[", count: depth), close = String(repeating: "]", count: depth)
        #expect(configIssues("minWorkers: \(open)\(close)\n") == [tooDeep(line: 1)])
        #expect(configIssues("batchSize: 1\nmaxWorkers: " + String(repeating: "{a: ", count: depth)) == [tooDeep(line: 2)])
        let error = expectArchiveError { _ = try HandlerSpec.parse(yaml: "kind: image_classifier\nmean: \(open)\(close)\n", file: "spec.yaml") }
        #expect(error == .invalidConfig(file: "spec.yaml", issues: [tooDeep(line: 2)]))
        // Within the bound, the value is read and refused as what it is, rendered short.
        let shallow = String(repeating: "[", count: 30) + String(repeating: "]", count: 30)
        #expect(configIssues("minWorkers: \(shallow)\n").map(\.problem) == ["is [[[…]]]"])
    }

    @Test func deepBlockNesting() {
        #expect(configIssues("minWorkers:\n" + String(repeating: "- ", count: 100_000) + "1\n") == [tooDeep(line: 2)])
        let indented = (0..<1000).map { String(repeating: " ", count: 2 * $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"
        #expect(configIssues(indented) == [tooDeep(line: 33)])
        #expect(configIssues(String(repeating: "? ", count: 50_000) + "a\n") == [tooDeep(line: 1)])
    }

    @Test func quotesAndCommentsCannotHideNesting() {
        // libyaml reads `'x` on a continuation line as part of the plain scalar, not as a quote.
        let depth = 10_000
        let hidden = "a: foo\n 'x\nb: " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "\n"
        #expect(configIssues(hidden) == [tooDeep(line: 3)])
        let afterComment = "# it's [\nb: " + String(repeating: "[", count: depth) + "\n"
        #expect(configIssues(afterComment) == [tooDeep(line: 2)])
        let inFlow = "a: [\"x\n\" , " + String(repeating: "[", count: depth) + "\n"
        #expect(configIssues(inFlow) == [tooDeep(line: 2)])
    }

    // MARK: YAML aliases

    @Test func billionLaughs() {
        var yaml = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        for (previous, name) in zip(names, names.dropFirst()) {
            yaml += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
        }
        yaml += "minWorkers: *i\n"
        let clock = ContinuousClock()
        let start = clock.now
        let issues = configIssues(yaml)
        #expect(clock.now - start < .seconds(1))
        #expect(issues == [ConfigIssue(line: 3, key: "(document)", problem: "uses more than 16 aliases (*name)",
                                       expected: "at most 16 aliases; write the values out instead")])
    }

    @Test func aliasesExpandingPastTheNodeBudget() {
        let yaml = "a: &a [" + Array(repeating: "0", count: 5000).joined(separator: ", ") + "]\n"
            + "b: &b [" + Array(repeating: "*a", count: 8).joined(separator: ", ") + "]\n"
            + "minWorkers: [" + Array(repeating: "*b", count: 5).joined(separator: ", ") + "]\n"
        let clock = ContinuousClock()
        let start = clock.now
        let issues = configIssues(yaml)
        #expect(clock.now - start < .seconds(2))
        #expect(issues.map(\.key) == ["(document)"])
        #expect(issues.first?.problem == "has more than 100000 values once its aliases (*name) are expanded")
    }

    @Test func aliasesChainingDeepSubtrees() {
        let open = String(repeating: "[", count: 40), close = String(repeating: "]", count: 40)
        let yaml = "a: &a \(open)x\(close)\nb: &b \(open)*a\(close)\nminWorkers: *b\n"
        #expect(configIssues(yaml) == [ConfigIssue(
            line: 1, key: "(document)", problem: "nests lists and mappings more than 64 levels deep (aliases expanded)",
            expected: "at most 64 levels of nesting")])
    }

    // MARK: Numbers and sizes in YAML

    @Test func sexagesimalIntegersThatOverflow() throws {
        let huge = "1:0:0:0:0:0:0:0:0:0:0:0"
        #expect(configIssues("minWorkers: \(huge)\n") == [ConfigIssue(
            line: 1, key: "minWorkers", problem: "is \(huge)", expected: "an integer from 0 to 256")])
        #expect(configIssues("deviceIds: [\(huge)]\n").map(\.problem) == ["has the item \(huge)"])
        #expect(configIssues("batchSize: 99999999999999999999:0\n").map(\.problem) == ["is 99999999999999999999:0"])
        // YAML 1.1 sexagesimal integers that fit still read as Yams reads them.
        #expect(try ModelConfig.parse(yaml: "maxBatchDelay: 1:30\n").settings.maxBatchDelay == 90)
    }

    @Test func documentsOverTheSizeLimit() {
        let yaml = String(repeating: "# padding\n", count: 110_000)
        #expect(configIssues(yaml) == [ConfigIssue(
            line: nil, key: "(document)", problem: "is 1100000 bytes, more than the 1048576 read",
            expected: "a model definition of at most 1 MiB")])
    }

    // MARK: Echoed values

    @Test func longValuesAreEchoedTruncated() throws {
        let long = String(repeating: "x", count: 100_000)
        let excerpt = String(repeating: "x", count: 80) + "…"
        #expect(configIssues("deviceType: \"\(long)\"\n") == [ConfigIssue(
            line: 1, key: "deviceType", problem: "is \"\(excerpt)\"", expected: "cpu or gpu")])
        #expect(configIssues("deviceIds: [\(long)]\n").map(\.problem) == ["has the item \"\(excerpt)\""])
        #expect(configIssues("minWorkers: [" + Array(repeating: "7", count: 10_000).joined(separator: ",") + "]\n")
            .map(\.problem) == ["is [7, 7, 7, 7, …]"])
        #expect(configIssues("handler:\n  kind: \(long)\n").map(\.problem) == ["is \"\(excerpt)\", not a built-in handler"])
        #expect(configIssues("minWorkers: \"a\\nb\"\n").map(\.problem) == ["is \"a\\nb\""])
        let warnings = try ModelConfig.parse(yaml: "? \(long)\n: 1\n").warnings
        #expect(warnings.map(\.key) == [excerpt])

        #expect(ArchiveError.invalidModelName(long).description.utf8.count < 300)
        #expect(ArchiveError.unsafeEntry(path: "a.tar", entry: long, reason: .symbolicLink(target: long)).description.utf8.count < 600)
        #expect(ArchiveError.missingFile(path: "a.mar", file: long, referencedBy: "the manifest").description.utf8.count < 600)
    }

    @Test func longEntryNamesInArchivesAreEchoedTruncated() throws {
        let base = try TemporaryFolder()
        let long = "model/" + String(repeating: "n", count: 200_000)
        let pax = TarBuilder.paxRecord("path", long) + TarBuilder.paxRecord("linkpath", long)
        let tar = TarBuilder.entry("PaxHeaders/x", Array(pax.utf8), type: "x") + TarBuilder.entry("x", [], type: "2") + TarBuilder.end
        let archive = try base.file("long.tar.gz", bytes: try TarBuilder.gzip(tar))
        let error = refuseOpening(base, archive)
        #expect(error == .unsafeEntry(path: archive.path, entry: long, reason: .symbolicLink(target: long)))
        #expect((error?.description.utf8.count ?? .max) < 1024)
    }

    @Test func manyIssuesAreSummedUp() throws {
        let handler = "handler:\n  kind: image_classifier\n" + (0..<10_000).map { "  k\($0): 1\n" }.joined()
        let issues = configIssues(handler, messageLimit: 4096)
        #expect(issues.count == 21)
        #expect(issues.last == ConfigIssue(line: nil, key: "(document)", problem: "has 9980 more errors, not listed"))
        let warnings = try ModelConfig.parse(yaml: (0..<10_000).map { "k\($0): 1\n" }.joined()).warnings
        #expect(warnings.count == 21)
        #expect(warnings.last?.problem == "has 9980 more warnings, not listed")
    }

    // MARK: Manifests

    @Test func hostileManifests() throws {
        let deep = "{\"model\": " + String(repeating: "[", count: 500_000) + "}"
        #expect(throws: ArchiveError.invalidManifest(path: "x", detail: "it is not valid JSON")) {
            _ = try Manifest.decode(Data(deep.utf8), path: "x")
        }
        let big = Data(repeating: 0x20, count: (1 << 20) + 1)
        #expect(throws: ArchiveError.invalidManifest(path: "x", detail: "it is 1048577 bytes, more than the 1048576 read")) {
            _ = try Manifest.decode(big, path: "x")
        }
    }

    // MARK: What must keep working

    @Test func ordinaryDocumentsStillParse() throws {
        let config = try ModelConfig.parse(yaml: """
            # it's a comment with [[[[ brackets and *stars
            workers: &w 2
            minWorkers: *w
            maxWorkers: 4   # don't [
            description: |
              Text with * and [ and it's
                more [[[
            note: 'it''s [x]'
            other: "a \\" [ b"
            handler:
              kind: image_classifier
              cropSize: [224, 224]
              mean: [0.5, 0.5, 0.5]
              std: [0.25, 0.25, 0.25]
              labels: "labels [v2].json"
            """)
        #expect(config.settings.minWorkers == 2 && config.settings.maxWorkers == 4)
        #expect(config.handler?.referencedFiles.map(\.file) == ["labels [v2].json"])
        #expect(config.warnings.map(\.key) == ["workers", "description", "note", "other"])
    }

    @Test func preScanEstimateIsNeverBelowTheRealDepth() throws {
        // Documents and the depth of lists and mappings Yams builds from them: the estimate may
        // be higher, never lower.
        let samples = [
            ("a: " + String(repeating: "[", count: 20) + String(repeating: "]", count: 20), 21),
            ("- " + String(repeating: "- ", count: 10) + "x", 11),
            ("a:\n- b:\n  - c:\n    - d: [x, {y: [z]}]", 10),
            ("? - ? - x\n: y", 4),
            ("a:\n  b:\n    c:\n      d: [{e: 1}]", 6),
        ]
        for (sample, depth) in samples {
            let root = try #require(YAMLDocument.root(of: sample, diagnostics: ConfigDiagnostics()), "\(sample)")
            #expect(YAMLDocument.checkExpanded(root, maxDepth: depth) == nil, "\(sample)")
            #expect(YAMLDocument.checkExpanded(root, maxDepth: depth - 1) != nil, "\(sample)")
            #expect(YAMLPreScan.check(sample, maxDepth: depth - 1, maxAliases: 16) != nil, "\(sample)")
        }
    }
}
