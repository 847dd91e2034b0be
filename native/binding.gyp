# Burrow's native addon: TUN file descriptors, batched packet I/O, checksums, and ChaCha20-Poly1305
# on the OpenSSL that Node links (its headers ship with Node's).
# Built by `npm run build:native` (node-gyp), normally via scripts/setup.sh.
{
  'targets': [
    {
      'target_name': 'burrow_native',
      'sources': ['src/addon.cc', 'src/aead.cc', 'src/checksum.cc', 'src/polled_fd.cc', 'src/process.cc', 'src/tun_fd.cc', 'src/udp_socket.cc'],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      # C++ exceptions on, consistently: node-addon-api reports JS errors as Napi::Error.
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions'],
      'cflags_cc': ['-std=c++17', '-Wall', '-Wextra', '-Wno-unused-parameter'],
      'conditions': [
        ['OS=="mac"', {
          'xcode_settings': {
            'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
            'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
            'MACOSX_DEPLOYMENT_TARGET': '11.0'
          }
        }]
      ]
    }
  ]
}
