import Foundation
import Testing
import TollgateEvents

@Suite struct MoneyTests {
    @Test(arguments: [
        ("12.50", Int64(12_500_000_000)),
        ("0", 0),
        ("-0", 0),
        ("1", 1_000_000_000),
        ("0.000000001", 1),
        ("0.00012345", 123_450),
        ("$1.23", 1_230_000_000),
        ("-$1.5", -1_500_000_000),
        ("+7.000000000", 7_000_000_000),
        ("9223372036.854775807", Int64.max),
        ("-9223372036.854775808", Int64.min),
    ])
    func parsesExactly(text: String, nanoUSD: Int64) throws {
        #expect(try Money.parse(text) == Money(nanoUSD: nanoUSD))
        #expect(Money(text) == Money(nanoUSD: nanoUSD))
    }

    @Test func rejectsMoreThanNineDecimals() {
        #expect(throws: Money.ParseError.tooManyDecimals("0.0000000001")) {
            try Money.parse("0.0000000001")
        }
        #expect(Money("1.1234567890") == nil)
    }

    @Test(arguments: ["", "-", "$", ".5", "12.", "1.2.3", "1e3", " 1", "1,000", "abc", "$-1", "--1", "1.-5"])
    func rejectsMalformed(text: String) {
        #expect(throws: Money.ParseError.malformed(text)) { try Money.parse(text) }
    }

    @Test(arguments: ["9223372036.854775808", "-9223372036.854775809", "100000000000"])
    func rejectsOutOfRange(text: String) {
        #expect(throws: Money.ParseError.outOfRange(text)) { try Money.parse(text) }
    }

    @Test func describesExactDollars() {
        #expect(Money(nanoUSD: 123_450).description == "$0.000123450")
        #expect(Money(nanoUSD: 12_500_000_000).description == "$12.500000000")
        #expect(Money(nanoUSD: -1_500_000_000).description == "-$1.500000000")
        #expect(Money.zero.description == "$0.000000000")
        #expect(Money(nanoUSD: .min).description == "-$9223372036.854775808")
        #expect(Money(nanoUSD: .max).description == "$9223372036.854775807")
    }

    @Test func descriptionRoundTrips() {
        for nano: Int64 in [0, 1, -1, 123_450, 12_500_000_000, .max, .min] {
            #expect(Money(Money(nanoUSD: nano).description) == Money(nanoUSD: nano))
        }
    }

    @Test func formatsRoundedWithIntegerMath() {
        let m = { (nano: Int64) in Money(nanoUSD: nano) }
        #expect(m(1_234_999_999).formatted(decimals: 2) == "$1.23")
        #expect(m(1_235_000_001).formatted(decimals: 2) == "$1.24")
        #expect(m(1_230_000_000).formatted(decimals: 0) == "$1")
        #expect(m(1_500_000_000).formatted(decimals: 0) == "$2")
        #expect(m(2_500_000_000).formatted(decimals: 0) == "$2")
        #expect(m(2_500_000_000).formatted(decimals: 0, rounding: .halfUp) == "$3")
        #expect(m(125_000_000).formatted(decimals: 2) == "$0.12")
        #expect(m(135_000_000).formatted(decimals: 2) == "$0.14")
        #expect(m(125_000_000).formatted(decimals: 2, rounding: .halfUp) == "$0.13")
        #expect(m(-125_000_000).formatted(decimals: 2, rounding: .halfUp) == "-$0.13")
        #expect(m(-125_000_000).formatted(decimals: 2) == "-$0.12")
        #expect(m(-4_000_000).formatted(decimals: 2) == "$0.00")
        #expect(m(999_999_999).formatted(decimals: 2) == "$1.00")
        #expect(m(50_001).formatted(decimals: 4) == "$0.0001")
        #expect(m(50_000).formatted(decimals: 4) == "$0.0000")
        #expect(m(123_450).formatted(decimals: 9) == "$0.000123450")
        #expect(m(.max).formatted(decimals: 2) == "$9223372036.85")
        #expect(m(.min).formatted(decimals: 0) == "-$9223372037")
    }

    @Test func arithmeticAndOverflow() {
        let a = Money(nanoUSD: 1_500_000_000)
        let b = Money(nanoUSD: 250_000_000)
        #expect(a + b == Money(nanoUSD: 1_750_000_000))
        #expect(a - b == Money(nanoUSD: 1_250_000_000))
        #expect(b - a == Money(nanoUSD: -1_250_000_000))
        #expect(b < a && a > b && a >= a && Money.zero < b)
        #expect(a.adding(b) == a + b)
        #expect(Money(nanoUSD: .max).adding(Money(nanoUSD: 1)) == nil)
        #expect(Money(nanoUSD: .min).subtracting(Money(nanoUSD: 1)) == nil)
        #expect(Money(nanoUSD: .max).multiplied(by: 2) == nil)
        #expect(Money(nanoUSD: 150).multiplied(by: 1_000_000) == Money(nanoUSD: 150_000_000))
        #expect(Money.sum([a, b, b]) == Money(nanoUSD: 2_000_000_000))
        #expect(Money.sum([Money(nanoUSD: .max), Money(nanoUSD: 1)]) == nil)
        #expect(Money(wholeUSD: 12) == Money(nanoUSD: 12_000_000_000))
        #expect(Money(wholeUSD: 10_000_000_000) == nil)
        var c = a
        c += b
        c -= a
        #expect(c == b)
    }

    @Test func codesAsBareInteger() throws {
        let data = try EventCoding.encode([Money(nanoUSD: 12_500_000_000), Money(nanoUSD: -3)])
        #expect(String(decoding: data, as: UTF8.self) == "[12500000000,-3]")
        #expect(try JSONDecoder().decode(Money.self, from: Data("9223372036854775807".utf8)) == Money(nanoUSD: .max))
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Money.self, from: Data("1.5".utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Money.self, from: Data("\"1\"".utf8)) }
    }
}
