// The Network Extension: the same steps as native/jsc-host/host.c's main(), with the
// system's utun (packetFlow) in place of /dev/net/tun and NEPacketTunnelNetworkSettings in
// place of `ip`. IncludeAllNetworks, ExcludeLocalNetworks and the per-app domains are the
// system's to enforce: they come from the NETunnelProviderProtocol (TunnelManager.swift or
// the .mobileconfig from `burrow profile`), never from here.
//
//   host.c                               here
//   Burrow.start(config)                 startTunnel: providerConfiguration["WgQuickConfig"]
//   apply_settings (ip)                  setTunnelNetworkSettings(NetworkSettings.make(apple))
//   open_udp + recvmmsg                  a BSD UDP socket + DispatchSource read, recvfrom loop
//   read(tun) batch -> Burrow.packets    packetFlow.readPackets batch -> core.packets
//   poll timeout -> Burrow.timer         DispatchSourceTimer -> core.timer
//   stdin "status" -> Burrow.status      handleAppMessage("status")
//   SIGTERM                              stopTunnel

import BurrowCore
import Darwin
import Foundation
import NetworkExtension
import os

final class PacketTunnelProvider: NEPacketTunnelProvider {
  private let queue = DispatchQueue(label: "net.burrow.tunnel")
  private var core: BurrowCore?
  private var udp: Int32 = -1
  private var udpSource: DispatchSourceRead?
  private var timer: DispatchSourceTimer?
  private let log = Logger(subsystem: "net.burrow", category: "tunnel")

  override func startTunnel(options: [String: NSObject]?, completionHandler: @escaping (Error?) -> Void) {
    queue.async {
      do {
        guard let proto = self.protocolConfiguration as? NETunnelProviderProtocol,
              let config = proto.providerConfiguration?["WgQuickConfig"] as? String else {
          throw BurrowError.script("no WgQuickConfig in the provider configuration")
        }
        let bundle = Bundle(for: BurrowCore.self).url(forResource: "burrow", withExtension: "js")!
        let core = try BurrowCore(bundleURL: bundle)
        core.onSend = { [unowned self] data, host, port in self.send(data, host, port) }
        core.onWrite = { [unowned self] packet in
          let p = Data(packet)
          self.packetFlow.writePackets([p], withProtocols: [NSNumber(value: (p.first ?? 0) >> 4 == 6 ? AF_INET6 : AF_INET)])
        }
        core.onArm = { [unowned self] ms in self.arm(ms) }
        core.onLog = { [unowned self] line in self.log.info("\(line, privacy: .public)") }
        // The system resolves names before we are started: the endpoints as written.
        let started = try core.start(config: config, resolvedEndpoints: "")
        self.core = core
        try self.openUdp(port: started.listenPort)
        self.setTunnelNetworkSettings(NetworkSettings.make(started.networkSettings)) { error in
          if let error { completionHandler(error); return }
          self.queue.async {
            try? core.timer()
            self.readPackets()
            completionHandler(nil)
          }
        }
      } catch {
        completionHandler(error)
      }
    }
  }

  override func stopTunnel(with reason: NEProviderStopReason, completionHandler: @escaping () -> Void) {
    queue.async {
      self.timer?.cancel()
      self.udpSource?.cancel() // closes the socket in its cancel handler
      self.core?.stop()
      self.core = nil
      completionHandler()
    }
  }

  /** The app asks for status ("status") as host.c's stdin does. */
  override func handleAppMessage(_ messageData: Data, completionHandler: ((Data?) -> Void)?) {
    queue.async {
      guard String(data: messageData, encoding: .utf8) == "status", let core = self.core else { completionHandler?(nil); return }
      completionHandler?((try? core.status())?.data(using: .utf8))
    }
  }

  // --- packets from the utun, in batches -------------------------------------------
  private func readPackets() {
    packetFlow.readPackets { [weak self] packets, _ in
      guard let self else { return }
      self.queue.async {
        guard let core = self.core else { return }
        do { try core.packets(packets) } catch { self.log.error("\(String(describing: error), privacy: .public)") }
        self.readPackets()
      }
    }
  }

  // --- the UDP socket ----------------------------------------------------------------
  private func openUdp(port: Int) throws {
    udp = socket(AF_INET6, SOCK_DGRAM, 0)
    guard udp >= 0 else { throw POSIXError(.init(rawValue: errno)!) }
    var off: Int32 = 0
    setsockopt(udp, IPPROTO_IPV6, IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
    _ = fcntl(udp, F_SETFL, fcntl(udp, F_GETFL) | O_NONBLOCK)
    var a = sockaddr_in6()
    a.sin6_family = sa_family_t(AF_INET6)
    a.sin6_len = UInt8(MemoryLayout<sockaddr_in6>.size)
    a.sin6_port = in_port_t(UInt16(port).bigEndian)
    let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
    guard bound == 0 else { throw POSIXError(.init(rawValue: errno)!) }
    let source = DispatchSource.makeReadSource(fileDescriptor: udp, queue: queue)
    source.setEventHandler { [unowned self] in self.readDatagrams() }
    let fd = udp
    source.setCancelHandler { close(fd) }
    source.resume()
    udpSource = source
  }

  /** Up to a batch of datagrams into the core's arena (host.c: recvmmsg), then one call. */
  private func readDatagrams() {
    guard let core else { return }
    var n = 0
    while n < BurrowCore.batch {
      var from = sockaddr_in6()
      var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
      let got = withUnsafeMutablePointer(to: &from) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          recvfrom(udp, core.udpArena + n * BurrowCore.udpSlot, BurrowCore.udpSlot, 0, $0, &len)
        }
      }
      if got <= 0 { break }
      core.udpLengths[n] = Int32(got)
      let a = core.udpAddrs + n * BurrowCore.addrStride
      let port = UInt16(bigEndian: from.sin6_port)
      a[1] = UInt8(port >> 8); a[2] = UInt8(port & 0xff)
      withUnsafeBytes(of: from.sin6_addr) { ip in
        let mapped = ip[0..<10].allSatisfy { $0 == 0 } && ip[10] == 0xff && ip[11] == 0xff
        if mapped { a[0] = 4; for i in 0..<4 { a[4 + i] = ip[12 + i] } } else { a[0] = 6; for i in 0..<16 { a[4 + i] = ip[i] } }
      }
      n += 1
    }
    do { try core.datagrams(count: n) } catch { log.error("\(String(describing: error), privacy: .public)") }
  }

  private func send(_ data: UnsafeRawBufferPointer, _ host: String, _ port: UInt16) {
    var to = sockaddr_in6()
    to.sin6_family = sa_family_t(AF_INET6)
    to.sin6_len = UInt8(MemoryLayout<sockaddr_in6>.size)
    to.sin6_port = in_port_t(port.bigEndian)
    var v4 = in_addr()
    if inet_pton(AF_INET, host, &v4) == 1 {
      withUnsafeMutableBytes(of: &to.sin6_addr) { b in
        b[10] = 0xff; b[11] = 0xff
        withUnsafeBytes(of: v4) { for i in 0..<4 { b[12 + i] = $0[i] } }
      }
    } else if inet_pton(AF_INET6, host, &to.sin6_addr) != 1 {
      return
    }
    _ = withUnsafePointer(to: &to) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(udp, data.baseAddress, data.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
    }
  }

  // --- the one timer -------------------------------------------------------------------
  private func arm(_ ms: Double) {
    timer?.cancel()
    timer = nil
    guard ms >= 0 else { return }
    let t = DispatchSource.makeTimerSource(queue: queue)
    t.schedule(deadline: .now() + .milliseconds(Int(ms.rounded(.up))))
    t.setEventHandler { [unowned self] in
      self.timer = nil
      try? self.core?.timer()
    }
    t.resume()
    timer = t
  }
}
