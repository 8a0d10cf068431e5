import Foundation
@testable import ServerCore
import Testing

/// Which resolved addresses an image fetch may connect to, and how `allowed_fetch_addresses`
/// is read: the policy alone, without a network.
@Suite struct FetchAddressPolicyTests {
    func address(_ text: String) throws -> IPAddress {
        try #require(IPAddress(text), "\(text)")
    }

    @Test func specialUseAddressesAreRefusedByDefault() throws {
        let policy = FetchAddressPolicy(allowed: [])
        let refused = [
            "127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
            "169.254.169.254", "100.64.0.1", "100.127.255.254", "224.0.0.1", "239.255.255.250", "255.255.255.255",
            "::1", "::", "fc00::1", "fd12:3456::1", "fe80::1", "febf::1", "fec0::1", "ff02::1",
            // IPv4 inside IPv6: mapped, compatible and NAT64 forms reach the IPv4 address.
            "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe",
        ]
        for text in refused {
            #expect(!policy.permits(try address(text)), "\(text) was permitted")
        }
        let permitted = ["8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "11.0.0.1",
                         "2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
        for text in permitted {
            #expect(policy.permits(try address(text)), "\(text) was refused")
        }
    }

    @Test func listedAddressesAndRangesArePermittedAndNothingElse() throws {
        let policy = FetchAddressPolicy(allowed: [try #require(AddressRange("127.0.0.1")), try #require(AddressRange("10.8.0.0/16")),
                                                  try #require(AddressRange("fd00::/8"))])
        #expect(policy.permits(try address("127.0.0.1")))
        #expect(policy.permits(try address("::ffff:127.0.0.1")), "the mapped form of a listed address")
        #expect(!policy.permits(try address("127.0.0.2")))
        #expect(!policy.permits(try address("::1")), "IPv6 loopback is not IPv4 loopback")
        #expect(policy.permits(try address("10.8.200.1")))
        #expect(!policy.permits(try address("10.9.0.1")))
        #expect(policy.permits(try address("fd00:abcd::1")))
        #expect(!policy.permits(try address("fc00::1")))
    }

    @Test func rangesParseAsCIDRAndRefuseAnythingElse() throws {
        let range = try #require(AddressRange("192.168.7.9/16"))
        #expect(range.network == (try address("192.168.0.0")))
        #expect(range.prefixLength == 16)
        #expect(AddressRange("::1")?.prefixLength == 128)
        #expect(["::1", "::", "fe80::1:0:0:2", "2001:db8:0:1:1:1:1:1", "::ffff:7f00:1"].map { IPAddress($0)?.description }
                    == ["::1", "::", "fe80::1:0:0:2", "2001:db8:0:1:1:1:1:1", "::ffff:7f00:1"])
        #expect(AddressRange("0.0.0.0/0")?.contains(try address("8.8.8.8")) == true)
        #expect(AddressRange("0.0.0.0/0")?.contains(try address("::1")) == false, "families never mix")
        for text in ["", "localhost", "example.com", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/8/8", "1.2.3.4.5", "/8"] {
            #expect(AddressRange(text) == nil, "\(text) was accepted")
        }
    }

    @Test func theConfigKeyIsParsedOnceAndNamesABadEntry() throws {
        var config = ServerConfiguration(modelStore: URL(fileURLWithPath: "/tmp"), workDirectory: URL(fileURLWithPath: "/tmp"))
        try config.apply(["allowed_fetch_addresses": "127.0.0.1, 10.0.0.0/8 ,fd00::/8"], relativeTo: URL(fileURLWithPath: "/tmp"))
        #expect(config.allowedFetchAddresses.map(\.description) == ["127.0.0.1/32", "10.0.0.0/8", "fd00::/8"])
        #expect(throws: ConfigurationError(key: "allowed_fetch_addresses",
                                           message: "'internal.example' is not an IP address or CIDR range such as 127.0.0.1, 10.0.0.0/8 or fd00::/8")) {
            try config.apply(["allowed_fetch_addresses": "127.0.0.1, internal.example"], relativeTo: URL(fileURLWithPath: "/tmp"))
        }
    }

    @Test func theURLFormIsReadOnlyFromAJSONObjectWithURL() throws {
        #expect(try ImageURLRequest.url(in: Array(#" {"url": "https://example.com/a.jpg"}"#.utf8)) == "https://example.com/a.jpg")
        #expect(try ImageURLRequest.url(in: ImageURLRequest.body(for: "http://h/x?a=1&b=\"2\"")) == "http://h/x?a=1&b=\"2\"")
        #expect(try ImageURLRequest.url(in: Array(#"{"text": "hello"}"#.utf8)) == nil)
        #expect(try ImageURLRequest.url(in: [0x89, 0x50, 0x4E, 0x47]) == nil)
        #expect(try ImageURLRequest.url(in: Array("just text".utf8)) == nil)
        #expect(throws: ModelServerError.self) { try ImageURLRequest.url(in: Array(#"{"url": 42}"#.utf8)) }
    }
}
