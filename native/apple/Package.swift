// swift-tools-version:5.9
// The Swift side of Burrow on Apple systems. BurrowCore (the JavaScriptCore host, the
// settings mapping, CryptoKit injection) builds with `swift build` on a Mac. PacketTunnel
// and BurrowApp are the sources of the two Xcode targets (a Network Extension and its
// containing app): an extension must be signed and embedded in an app, which SwiftPM
// cannot do; see README.md.
import PackageDescription

let package = Package(
  name: "Burrow",
  platforms: [.macOS(.v13), .iOS(.v16)],
  products: [.library(name: "BurrowCore", targets: ["BurrowCore"])],
  targets: [
    .target(name: "BurrowCore", path: "Sources/BurrowCore", resources: [.copy("Resources/burrow.js")]),
    .target(name: "PacketTunnel", dependencies: ["BurrowCore"], path: "Sources/PacketTunnel"),
    .target(name: "BurrowApp", path: "Sources/BurrowApp"),
  ]
)
