// The app side: saves the tunnel for the system as the .mobileconfig from
// `burrow profile` would (src/cli/profile.ts): the same keys, set through the API.
//   full tunnel / split tunnel   NETunnelProviderManager, includeAllNetworks and
//                                excludeLocalNetworks on the protocol
//   --per-app                    NETunnelProviderManager.forPerAppVPN(), mailDomains,
//                                calendarDomains, contactsDomains
// and asks the running extension for status (PacketTunnelProvider.handleAppMessage).
import Foundation
import NetworkExtension

public struct TunnelDescription {
  public var name: String
  /** The wg-quick text, as VendorConfig.WgQuickConfig in the profile. */
  public var wgQuickConfig: String
  public var remoteAddress: String
  public var providerBundleIdentifier: String
  public var includeAllNetworks: Bool
  public var excludeLocalNetworks: Bool
  public var perApp: Bool
  public var mailDomains: [String]
  public var calendarDomains: [String]
  public var contactsDomains: [String]
}

public enum TunnelManager {
  public static func save(_ t: TunnelDescription) async throws -> NETunnelProviderManager {
    let existing = try await NETunnelProviderManager.loadAllFromPreferences()
    let manager = existing.first { $0.localizedDescription == t.name } ?? (t.perApp ? NETunnelProviderManager.forPerAppVPN() : NETunnelProviderManager())
    let proto = NETunnelProviderProtocol()
    proto.providerBundleIdentifier = t.providerBundleIdentifier
    proto.serverAddress = t.remoteAddress
    proto.providerConfiguration = ["WgQuickConfig": t.wgQuickConfig, "InterfaceName": t.name]
    proto.includeAllNetworks = t.includeAllNetworks
    proto.excludeLocalNetworks = t.excludeLocalNetworks
    manager.protocolConfiguration = proto
    manager.localizedDescription = t.name
    manager.isEnabled = true
    #if os(macOS)
    if t.perApp {
      manager.mailDomains = t.mailDomains
      manager.calendarDomains = t.calendarDomains
      manager.contactsDomains = t.contactsDomains
    }
    #endif
    try await manager.saveToPreferences()
    try await manager.loadFromPreferences()
    return manager
  }

  public static func start(_ manager: NETunnelProviderManager) throws {
    try manager.connection.startVPNTunnel()
  }

  /** Burrow.status() of the running extension, as JSON. */
  public static func status(_ manager: NETunnelProviderManager) async throws -> String? {
    guard let session = manager.connection as? NETunnelProviderSession else { return nil }
    return try await withCheckedThrowingContinuation { k in
      do {
        try session.sendProviderMessage(Data("status".utf8)) { reply in k.resume(returning: reply.flatMap { String(data: $0, encoding: .utf8) }) }
      } catch {
        k.resume(throwing: error)
      }
    }
  }
}
