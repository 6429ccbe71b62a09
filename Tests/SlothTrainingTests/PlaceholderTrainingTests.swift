import Testing
@testable import SlothTraining

@Test func slothTrainingBuilds() { #expect(Bool(true)) }
