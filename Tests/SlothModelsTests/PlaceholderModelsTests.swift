import Testing
@testable import SlothModels

@Test func slothModelsBuilds() { #expect(Bool(true)) }
