import Testing
@testable import SlothCore

@Test func slothCoreBuilds() { #expect(Bool(true)) }
