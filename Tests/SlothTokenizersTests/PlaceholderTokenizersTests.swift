import Testing
@testable import SlothTokenizers

@Test func slothTokenizersBuilds() { #expect(Bool(true)) }
