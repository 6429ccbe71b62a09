import Testing
@testable import SlothFormats

@Test func slothFormatsBuilds() { #expect(Bool(true)) }
