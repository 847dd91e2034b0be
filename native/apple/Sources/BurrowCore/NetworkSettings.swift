// The core's `apple` JSON (src/apple/network-settings.ts) -> NEPacketTunnelNetworkSettings.
// Its keys are the property names of Apple's classes: this copies fields and decides nothing.
import NetworkExtension

public enum NetworkSettings {
  public static func make(_ j: [String: Any]) -> NEPacketTunnelNetworkSettings {
    let s = NEPacketTunnelNetworkSettings(tunnelRemoteAddress: j["tunnelRemoteAddress"] as? String ?? "127.0.0.1")
    s.mtu = (j["mtu"] as? Int).map { NSNumber(value: $0) }
    if let v4 = j["ipv4Settings"] as? [String: Any] {
      let ip = NEIPv4Settings(addresses: v4["addresses"] as? [String] ?? [], subnetMasks: v4["subnetMasks"] as? [String] ?? [])
      ip.includedRoutes = (v4["includedRoutes"] as? [[String: Any]] ?? []).map(route4)
      ip.excludedRoutes = (v4["excludedRoutes"] as? [[String: Any]] ?? []).map(route4)
      s.ipv4Settings = ip
    }
    if let v6 = j["ipv6Settings"] as? [String: Any] {
      let ip = NEIPv6Settings(addresses: v6["addresses"] as? [String] ?? [],
                              networkPrefixLengths: (v6["networkPrefixLengths"] as? [Int] ?? []).map { NSNumber(value: $0) })
      ip.includedRoutes = (v6["includedRoutes"] as? [[String: Any]] ?? []).map(route6)
      ip.excludedRoutes = (v6["excludedRoutes"] as? [[String: Any]] ?? []).map(route6)
      s.ipv6Settings = ip
    }
    if let dns = j["dnsSettings"] as? [String: Any] {
      let d = NEDNSSettings(servers: dns["servers"] as? [String] ?? [])
      d.searchDomains = dns["searchDomains"] as? [String]
      d.matchDomains = dns["matchDomains"] as? [String]
      s.dnsSettings = d
    }
    return s
  }

  private static func route4(_ r: [String: Any]) -> NEIPv4Route {
    if r["isDefault"] as? Bool == true { return NEIPv4Route.default() }
    return NEIPv4Route(destinationAddress: r["destinationAddress"] as! String, subnetMask: r["destinationSubnetMask"] as! String)
  }

  private static func route6(_ r: [String: Any]) -> NEIPv6Route {
    if r["isDefault"] as? Bool == true { return NEIPv6Route.default() }
    return NEIPv6Route(destinationAddress: r["destinationAddress"] as! String,
                       networkPrefixLength: NSNumber(value: r["destinationNetworkPrefixLength"] as! Int))
  }
}
