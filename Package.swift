// swift-tools-version:6.0
import PackageDescription

// Dependency order (DESIGN.md):
// CSlothKernels <- SlothCore (loads a CBLAS, OpenBLAS by default, at run time) <- SlothFormats <- SlothModels <- SlothTraining, SlothExport <- Sloth <- sloth
// SlothTokenizers, SlothTemplates beside them (no tensors).
let package = Package(
    name: "Sloth",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Sloth", targets: ["Sloth"]),
        .executable(name: "sloth", targets: ["sloth"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.28.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        // SIMD kernels (C vector extensions, cloned per ISA); optimised in debug builds too, so tests stay quick.
        .target(name: "CSlothKernels", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "SlothCore", dependencies: ["CSlothKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .target(name: "SlothFormats", dependencies: ["SlothCore"]),
        .target(name: "SlothTokenizers", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "SlothTemplates"),
        .target(name: "SlothModels", dependencies: ["SlothCore", "SlothFormats", "CZstd"]),
        .target(name: "SlothTraining", dependencies: ["SlothCore", "SlothFormats", "SlothModels", "SlothTokenizers", "SlothTemplates"]),
        .target(name: "SlothExport", dependencies: ["SlothCore", "SlothFormats", "SlothModels", "SlothTokenizers"]),
        .target(name: "Sloth", dependencies: ["SlothCore", "SlothFormats", "SlothModels", "SlothTraining", "SlothTokenizers", "SlothTemplates", "SlothExport"]),
        .executableTarget(name: "sloth-api-example", dependencies: ["Sloth"], path: "Examples/APIExample"),
        .executableTarget(name: "sloth", dependencies: ["Sloth", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Yams", package: "Yams")]),

        .testTarget(name: "SlothCoreTests", dependencies: ["SlothCore"]),
        .testTarget(name: "SlothFormatsTests", dependencies: ["SlothFormats"]),
        .testTarget(name: "SlothTokenizersTests", dependencies: ["SlothTokenizers"]),
        .testTarget(name: "SlothTemplatesTests", dependencies: ["SlothTemplates"]),
        .testTarget(name: "SlothModelsTests", dependencies: ["SlothModels"]),
        .testTarget(name: "SlothTrainingTests", dependencies: ["SlothTraining"]),
        .testTarget(name: "SlothExportTests", dependencies: ["SlothExport", "SlothTraining"]),
        .testTarget(name: "SlothCLITests", dependencies: ["Sloth"]),
    ],
    swiftLanguageModes: [.v5]
)
