import Testing
@testable import SlothExport

@Test func slothExportBuilds() { #expect(Bool(true)) }
