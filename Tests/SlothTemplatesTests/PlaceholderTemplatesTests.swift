import Testing
@testable import SlothTemplates

@Test func slothTemplatesBuilds() { #expect(Bool(true)) }
