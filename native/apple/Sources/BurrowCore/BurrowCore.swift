// The Burrow core (dist/jsc/burrow.js) in a JSContext: the Swift twin of
// native/jsc-host/host.c, function for function, so that the C host's namespace tests
// say as much as possible about this code.
//
//   host.c                         here
//   JSGlobalContextCreate          JSContext()
//   cb_random (getrandom)          SecRandomCopyBytes
//   cb_send (sendto)               onSend closure -> the provider's UDP socket
//   cb_write (write to the TUN)    onWrite closure -> packetFlow.writePackets
//   cb_arm (poll timeout)          onArm closure -> a DispatchSourceTimer
//   cb_seal/cb_open (OpenSSL)      CryptoKit ChaChaPoly
//   cb_x25519 (OpenSSL)            CryptoKit Curve25519 through host.x25519
//   wrap() NoCopy typed arrays     JSObjectMakeTypedArrayWithBytesNoCopy, same call
//   Burrow.packets/datagrams/timer/status, same arguments.
//   apply_plan (Burrow.linuxCommands  NetworkSettings.make, then setTunnelNetworkSettings:
//     with ip and resolv.conf)         the system applies the same JSON, and undoes it
// All calls happen on one serial queue: a JSContext is not for concurrent use.

import CryptoKit
import Foundation
import JavaScriptCore
import Security

public final class BurrowCore {
  public static let batch = 64
  public static let headroom = 16
  public static let addrStride = 20
  public static let udpSlot = 2048

  public struct Started {
    public let json: [String: Any]
    public let networkSettings: [String: Any]
    public let listenPort: Int
    public let slotSize: Int
  }

  private let context: JSContext
  private let burrow: JSValue
  public var onSend: (UnsafeRawBufferPointer, String, UInt16) -> Void = { _, _, _ in }
  public var onWrite: (UnsafeRawBufferPointer) -> Void = { _ in }
  public var onArm: (Double) -> Void = { _ in }
  public var onLog: (String) -> Void = { _ in }

  // The batch arenas, wrapped once (as host.c does) and handed to the core every batch.
  public private(set) var tunArena: UnsafeMutableRawPointer?
  public private(set) var tunLengths: UnsafeMutablePointer<Int32>?
  public let udpArena = UnsafeMutableRawPointer.allocate(byteCount: BurrowCore.batch * BurrowCore.udpSlot, alignment: 16)
  public let udpLengths = UnsafeMutablePointer<Int32>.allocate(capacity: BurrowCore.batch)
  public let udpAddrs = UnsafeMutablePointer<UInt8>.allocate(capacity: BurrowCore.batch * BurrowCore.addrStride)
  private var jsTunArena: JSValue?
  private var jsTunLengths: JSValue?
  private var jsUdpArena: JSValue!
  private var jsUdpLengths: JSValue!
  private var jsUdpAddrs: JSValue!
  private var slotSize = 0

  public init(bundleURL: URL) throws {
    guard let context = JSContext() else { throw BurrowError.noContext }
    self.context = context
    var thrown: String?
    context.exceptionHandler = { _, e in thrown = e?.toString() }
    context.evaluateScript(try String(contentsOf: bundleURL, encoding: .utf8), withSourceURL: bundleURL)
    if let thrown { throw BurrowError.script(thrown) }
    guard let burrow = context.objectForKeyedSubscript("Burrow"), burrow.isObject else { throw BurrowError.script("no Burrow global") }
    self.burrow = burrow
    jsUdpArena = wrap(kJSTypedArrayTypeUint8Array, udpArena, BurrowCore.batch * BurrowCore.udpSlot)
    jsUdpLengths = wrap(kJSTypedArrayTypeInt32Array, UnsafeMutableRawPointer(udpLengths), BurrowCore.batch * 4)
    jsUdpAddrs = wrap(kJSTypedArrayTypeUint8Array, UnsafeMutableRawPointer(udpAddrs), BurrowCore.batch * BurrowCore.addrStride)
  }

  deinit {
    tunArena?.deallocate()
    tunLengths?.deallocate()
    udpArena.deallocate()
    udpLengths.deallocate()
    udpAddrs.deallocate()
  }

  /** A typed array over our memory, no copy: the same C call host.c makes. */
  private func wrap(_ type: JSTypedArrayType, _ bytes: UnsafeMutableRawPointer, _ length: Int) -> JSValue {
    let ctx = context.jsGlobalContextRef
    let object = JSObjectMakeTypedArrayWithBytesNoCopy(ctx, type, bytes, length, nil, nil, nil)
    return JSValue(jsValueRef: object, in: context)
  }

  /** The bytes of a typed array argument: its buffer plus its byte offset (host.c's bytes_of). */
  private func bytes(of value: JSValue) -> UnsafeMutableRawBufferPointer {
    let ctx = context.jsGlobalContextRef
    let object = JSValueToObject(ctx, value.jsValueRef, nil)
    let base = JSObjectGetTypedArrayBytesPtr(ctx, object, nil)!
    let offset = JSObjectGetTypedArrayByteOffset(ctx, object, nil)
    let length = JSObjectGetTypedArrayByteLength(ctx, object, nil)
    return UnsafeMutableRawBufferPointer(start: base + offset, count: length)
  }

  private func hostObject() -> JSValue {
    let host = JSValue(newObjectIn: context)!
    let random: @convention(block) (JSValue) -> Void = { [unowned self] out in
      let b = self.bytes(of: out)
      precondition(SecRandomCopyBytes(kSecRandomDefault, b.count, b.baseAddress!) == errSecSuccess)
    }
    let send: @convention(block) (JSValue, String, Int) -> Void = { [unowned self] data, host, port in
      self.onSend(UnsafeRawBufferPointer(self.bytes(of: data)), host, UInt16(port))
    }
    let write: @convention(block) (JSValue) -> Void = { [unowned self] packet in
      self.onWrite(UnsafeRawBufferPointer(self.bytes(of: packet)))
    }
    let arm: @convention(block) (Double) -> Void = { [unowned self] ms in self.onArm(ms) }
    let log: @convention(block) (String) -> Void = { [unowned self] line in self.onLog(line) }
    // X25519 from CryptoKit: the scalar is clamped by CryptoKit as by RFC 7748.
    let x25519: @convention(block) (JSValue, JSValue, JSValue) -> Bool = { [unowned self] scalar, point, out in
      let k = Data(self.bytes(of: scalar))
      let p = Data(self.bytes(of: point))
      guard let priv = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: k) else { return false }
      let isBase = p.first == 9 && p.dropFirst().allSatisfy { $0 == 0 }
      let result: Data
      if isBase {
        result = priv.publicKey.rawRepresentation
      } else {
        guard let pub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: p),
              let shared = try? priv.sharedSecretFromKeyAgreement(with: pub) else { return false }
        result = shared.withUnsafeBytes { Data($0) }
      }
      let o = self.bytes(of: out)
      result.copyBytes(to: o.bindMemory(to: UInt8.self))
      return true
    }
    host.setObject(random, forKeyedSubscript: "random" as NSString)
    host.setObject(send, forKeyedSubscript: "send" as NSString)
    host.setObject(write, forKeyedSubscript: "write" as NSString)
    host.setObject(arm, forKeyedSubscript: "arm" as NSString)
    host.setObject(log, forKeyedSubscript: "log" as NSString)
    host.setObject(x25519, forKeyedSubscript: "x25519" as NSString)
    host.setObject(aeadObject(), forKeyedSubscript: "aead" as NSString)
    let wallClockAtZero = Date().timeIntervalSince1970 * 1000 - BurrowCore.now()
    host.setObject(wallClockAtZero, forKeyedSubscript: "wallClockAtZero" as NSString)
    return host
  }

  /** CryptoKit's ChaChaPoly behind the engine's Aead seam (host.c: OpenSSL). */
  private func aeadObject() -> JSValue {
    let aead = JSValue(newObjectIn: context)!
    func nonce(_ counter: Double) -> ChaChaPoly.Nonce {
      var n = [UInt8](repeating: 0, count: 12)
      var c = UInt64(counter)
      for i in 0..<8 { n[4 + i] = UInt8(c & 0xff); c >>= 8 }
      return try! ChaChaPoly.Nonce(data: n)
    }
    let seal: @convention(block) (JSValue, Double, JSValue, JSValue, JSValue) -> JSValue = { [unowned self] key, counter, plain, aad, out in
      let box = try! ChaChaPoly.seal(Data(self.bytes(of: plain)), using: SymmetricKey(data: Data(self.bytes(of: key))),
                                     nonce: nonce(counter), authenticating: Data(self.bytes(of: aad)))
      let o = self.bytes(of: out).bindMemory(to: UInt8.self)
      (box.ciphertext + box.tag).copyBytes(to: o)
      return out
    }
    let open: @convention(block) (JSValue, Double, JSValue, JSValue, JSValue) -> Bool = { [unowned self] key, counter, sealed, aad, out in
      let s = Data(self.bytes(of: sealed))
      guard s.count >= 16,
            let box = try? ChaChaPoly.SealedBox(nonce: nonce(counter), ciphertext: s.prefix(s.count - 16), tag: s.suffix(16)),
            let plain = try? ChaChaPoly.open(box, using: SymmetricKey(data: Data(self.bytes(of: key))), authenticating: Data(self.bytes(of: aad)))
      else { return false }
      plain.copyBytes(to: self.bytes(of: out).bindMemory(to: UInt8.self))
      return true
    }
    aead.setObject("CryptoKit", forKeyedSubscript: "name" as NSString)
    aead.setObject(seal, forKeyedSubscript: "seal" as NSString)
    aead.setObject(open, forKeyedSubscript: "open" as NSString)
    return aead
  }

  /** Monotonic milliseconds, the engine's clock (host.c: CLOCK_MONOTONIC). */
  public static func now() -> Double {
    Double(clock_gettime_nsec_np(CLOCK_UPTIME_RAW)) / 1e6
  }

  /** Burrow.start: the configuration in, the settings out (resolved endpoints as JSON, or ""). */
  public func start(config: String, resolvedEndpoints: String) throws -> Started {
    let result = try call("start", [config, resolvedEndpoints, hostObject()])
    guard let text = result.toString(), let data = text.data(using: .utf8),
          let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let apple = json["apple"] as? [String: Any],
          let slot = json["slotSize"] as? Int else { throw BurrowError.script("start answered \(result)") }
    slotSize = slot
    tunArena = UnsafeMutableRawPointer.allocate(byteCount: BurrowCore.batch * slot, alignment: 16)
    tunLengths = UnsafeMutablePointer<Int32>.allocate(capacity: BurrowCore.batch)
    jsTunArena = wrap(kJSTypedArrayTypeUint8Array, tunArena!, BurrowCore.batch * slot)
    jsTunLengths = wrap(kJSTypedArrayTypeInt32Array, UnsafeMutableRawPointer(tunLengths!), BurrowCore.batch * 4)
    return Started(json: json, networkSettings: apple, listenPort: json["listenPort"] as? Int ?? 0, slotSize: slot)
  }

  /** Packets from packetFlow, copied into the arena at slot i + 16 (the data header's room). */
  public func packets(_ batch: [Data]) throws {
    guard let arena = tunArena, let lengths = tunLengths else { throw BurrowError.notStarted }
    var n = 0
    for p in batch.prefix(BurrowCore.batch) where p.count <= slotSize - BurrowCore.headroom - 32 {
      p.copyBytes(to: (arena + n * slotSize + BurrowCore.headroom).assumingMemoryBound(to: UInt8.self), count: p.count)
      lengths[n] = Int32(p.count)
      n += 1
    }
    if n > 0 { try call("packets", [jsTunArena!, jsTunLengths!, n, slotSize, BurrowCore.now()]) }
  }

  /** Datagrams already in udpArena/udpLengths/udpAddrs (filled by the provider's recvfrom loop). */
  public func datagrams(count: Int) throws {
    if count > 0 { try call("datagrams", [jsUdpArena!, jsUdpLengths!, jsUdpAddrs!, count, BurrowCore.udpSlot, BurrowCore.now()]) }
  }

  public func timer() throws { try call("timer", [BurrowCore.now()]) }

  public func status() throws -> String { try call("status", [BurrowCore.now()]).toString() ?? "[]" }

  public func stop() { _ = try? call("stop", []) }

  @discardableResult
  private func call(_ name: String, _ args: [Any]) throws -> JSValue {
    var thrown: String?
    context.exceptionHandler = { _, e in thrown = e?.toString() }
    let r = burrow.invokeMethod(name, withArguments: args)
    if let thrown { throw BurrowError.script("Burrow.\(name): \(thrown)") }
    return r!
  }
}

public enum BurrowError: Error {
  case noContext
  case notStarted
  case script(String)
}
