//! AES-128-GCM sealing/opening of punktfunk/1 media datagrams.
//!
//! # Nonce construction
//!
//! The 12-byte GCM nonce is `salt[0..4] ‖ seq` with `seq` as a big-endian
//! `u64`, except that the top bit of byte 0 is replaced by the *sender's*
//! direction: `0` for host→client, `1` for client→host. Both peers share one
//! key and salt and both count `seq` from 0, so without that bit the two
//! directions would reuse each other's nonces (fatal for GCM: it leaks the
//! XOR of plaintexts and lets an attacker forge tags). With it the two nonce
//! spaces are disjoint; within one direction the nonce is unique as long as
//! `seq` never repeats, which [`MediaSealer`] enforces by refusing any seq
//! that is not above the previous one. One sealer per (key, direction):
//! every stream sent under the same key must share it.
//!
//! The AAD is `seq` again as 8 big-endian bytes, so the clear-text seq in
//! front of each datagram is authenticated (the nonce already binds it; the
//! AAD makes that explicit and independent of the nonce layout).
//!
//! # Datagram layout
//!
//! `seq (8, BE, clear) ‖ ciphertext ‖ tag (16)`; [`MediaSealer::seal_datagram`]
//! and [`MediaOpener::open_datagram`] work on that layout in place, so a
//! sender can build plaintext at offset 8 of a reusable buffer, seal, and
//! send the same bytes without copying or allocating.

use std::fmt;

use super::evp::{GcmContext, GcmMode, GCM_NONCE_LEN, GCM_TAG_LEN};
use super::{check_key, CryptoError, KEY_LEN};

/// Bytes of the salt shared by both peers (the nonce prefix).
pub const SALT_LEN: usize = 4;
/// Bytes of the clear-text sequence number in front of each datagram.
pub const SEQ_LEN: usize = 8;
/// Bytes of the GCM tag appended to each datagram.
pub const TAG_LEN: usize = GCM_TAG_LEN;
/// Bytes of the GCM nonce.
pub const NONCE_LEN: usize = GCM_NONCE_LEN;
/// Bytes sealing adds around a plaintext (seq in front, tag behind).
pub const SEAL_OVERHEAD: usize = SEQ_LEN + TAG_LEN;

/// Which peer sent a datagram; selects the nonce's top bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Host → client (nonce bit 0).
    HostToClient,
    /// Client → host (nonce bit 1).
    ClientToHost,
}

impl Direction {
    /// The value of nonce byte 0's top bit for this direction.
    fn nonce_bit(self) -> u8 {
        match self {
            Direction::HostToClient => 0x00,
            Direction::ClientToHost => 0x80,
        }
    }
}

/// The GCM nonce for `seq` sent in `direction` (see the module docs).
pub fn gcm_nonce(salt: &[u8; SALT_LEN], direction: Direction, seq: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..SALT_LEN].copy_from_slice(salt);
    nonce[0] = (nonce[0] & 0x7f) | direction.nonce_bit();
    nonce[SALT_LEN..].copy_from_slice(&seq.to_be_bytes());
    nonce
}

/// The three regions of a datagram buffer.
struct DatagramParts<'a> {
    seq: &'a mut [u8; SEQ_LEN],
    body: &'a mut [u8],
    tag: &'a mut [u8; TAG_LEN],
}

/// Splits a datagram into its seq, body and tag regions.
fn split_datagram(datagram: &mut [u8]) -> Result<DatagramParts<'_>, CryptoError> {
    let len = datagram.len();
    if len < SEAL_OVERHEAD {
        return Err(CryptoError::InvalidLength {
            what: "datagram",
            len,
        });
    }
    let (seq, rest) = datagram.split_at_mut(SEQ_LEN);
    let (body, tag) = rest.split_at_mut(len - SEAL_OVERHEAD);
    Ok(DatagramParts {
        seq: seq.try_into().expect("split leaves exactly SEQ_LEN bytes"),
        body,
        tag: tag.try_into().expect("split leaves exactly TAG_LEN bytes"),
    })
}

/// Seals outgoing datagrams for one direction. Keeps one keyed OpenSSL
/// context, so sealing allocates nothing.
pub struct MediaSealer {
    ctx: GcmContext,
    salt: [u8; SALT_LEN],
    direction: Direction,
    last_seq: Option<u64>,
}

impl fmt::Debug for MediaSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSealer")
            .field("direction", &self.direction)
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl MediaSealer {
    /// A sealer for traffic sent in `direction` (our own role). Refuses the
    /// all-zero key.
    pub fn new(
        key: &[u8; KEY_LEN],
        salt: [u8; SALT_LEN],
        direction: Direction,
    ) -> Result<Self, CryptoError> {
        check_key(key)?;
        Ok(MediaSealer {
            ctx: GcmContext::new(key, GcmMode::Seal)?,
            salt,
            direction,
            last_seq: None,
        })
    }

    /// The direction this sealer's nonces are marked with.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The last seq successfully sealed, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Encrypts `payload` in place as packet `seq` and writes the tag.
    /// `seq` must be above every seq sealed before (nonce uniqueness).
    pub fn seal_in_place(
        &mut self,
        seq: u64,
        payload: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        if let Some(last) = self.last_seq {
            if seq <= last {
                return Err(CryptoError::SeqNotIncreasing { seq, last });
            }
        }
        let nonce = gcm_nonce(&self.salt, self.direction, seq);
        self.ctx.seal(&nonce, &seq.to_be_bytes(), payload, tag)?;
        self.last_seq = Some(seq);
        Ok(())
    }

    /// Seals a whole datagram in place: `datagram[8..len-16]` holds the
    /// plaintext on entry; on return the first 8 bytes hold `seq` (BE), the
    /// middle the ciphertext and the last 16 the tag. The buffer must be at
    /// least [`SEAL_OVERHEAD`] bytes.
    pub fn seal_datagram(&mut self, seq: u64, datagram: &mut [u8]) -> Result<(), CryptoError> {
        let parts = split_datagram(datagram)?;
        self.seal_in_place(seq, parts.body, parts.tag)?;
        *parts.seq = seq.to_be_bytes();
        Ok(())
    }
}

/// Opens incoming datagrams from one direction. Allocation-free, like
/// [`MediaSealer`]. It does not reject replays: run
/// [`crate::recv::replay::ReplayFilter`] on the seq after a successful open.
pub struct MediaOpener {
    ctx: GcmContext,
    salt: [u8; SALT_LEN],
    direction: Direction,
}

impl fmt::Debug for MediaOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaOpener")
            .field("direction", &self.direction)
            .finish_non_exhaustive()
    }
}

impl MediaOpener {
    /// An opener for traffic sent in `direction` — the *peer's* direction,
    /// e.g. a client opens [`Direction::HostToClient`]. Refuses the zero key.
    pub fn new(
        key: &[u8; KEY_LEN],
        salt: [u8; SALT_LEN],
        direction: Direction,
    ) -> Result<Self, CryptoError> {
        check_key(key)?;
        Ok(MediaOpener {
            ctx: GcmContext::new(key, GcmMode::Open)?,
            salt,
            direction,
        })
    }

    /// The direction of the traffic this opener accepts.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Decrypts `payload` in place as packet `seq`, verifying `tag`. On error
    /// `payload` holds garbage and must be dropped.
    pub fn open_in_place(
        &mut self,
        seq: u64,
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = gcm_nonce(&self.salt, self.direction, seq);
        self.ctx.open(&nonce, &seq.to_be_bytes(), payload, tag)
    }

    /// Opens a whole datagram (`seq ‖ ciphertext ‖ tag`) in place and returns
    /// its seq and the plaintext, which lies at `datagram[8..len-16]`.
    pub fn open_datagram<'a>(
        &mut self,
        datagram: &'a mut [u8],
    ) -> Result<(u64, &'a mut [u8]), CryptoError> {
        let parts = split_datagram(datagram)?;
        let seq = u64::from_be_bytes(*parts.seq);
        self.open_in_place(seq, parts.body, parts.tag)?;
        Ok((seq, parts.body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::evp::tests::{hex, TC3_CIPHERTEXT};
    use openssl::symm::{encrypt_aead, Cipher};
    use proptest::prelude::*;

    const KEY: [u8; 16] = *b"punktfunk-key-01";
    const SALT: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    fn datagram_with(plaintext: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; SEQ_LEN];
        d.extend_from_slice(plaintext);
        d.extend_from_slice(&[0u8; TAG_LEN]);
        d
    }

    fn pair(direction: Direction) -> (MediaSealer, MediaOpener) {
        (
            MediaSealer::new(&KEY, SALT, direction).unwrap(),
            MediaOpener::new(&KEY, SALT, direction).unwrap(),
        )
    }

    #[test]
    fn datagram_round_trip() {
        let (mut sealer, mut opener) = pair(Direction::HostToClient);
        for seq in [0u64, 1, 2, 1000, u64::MAX - 1] {
            let plaintext: Vec<u8> = (0..1448u32)
                .map(|i| (i * 7).wrapping_add(seq as u32) as u8)
                .collect();
            let mut d = datagram_with(&plaintext);
            sealer.seal_datagram(seq, &mut d).unwrap();
            assert_eq!(d[..8], seq.to_be_bytes());
            assert_ne!(d[8..8 + plaintext.len()], plaintext[..]);
            let (got_seq, got) = opener.open_datagram(&mut d).unwrap();
            assert_eq!(got_seq, seq);
            assert_eq!(got, &plaintext[..]);
        }
    }

    #[test]
    fn construction_matches_documented_nonce_and_aad() {
        // Independent check through OpenSSL's one-shot API.
        let (mut sealer, _) = pair(Direction::ClientToHost);
        let seq = 0x0102_0304_0506_0708u64;
        let plaintext = b"header and shard bytes".to_vec();
        let mut d = datagram_with(&plaintext);
        sealer.seal_datagram(seq, &mut d).unwrap();

        let nonce = [0x92, 0x34, 0x56, 0x78, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(gcm_nonce(&SALT, Direction::ClientToHost, seq), nonce);
        let mut tag = [0u8; 16];
        let expected = encrypt_aead(
            Cipher::aes_128_gcm(),
            &KEY,
            Some(&nonce),
            &seq.to_be_bytes(),
            &plaintext,
            &mut tag,
        )
        .unwrap();
        assert_eq!(d[8..8 + plaintext.len()], expected[..]);
        assert_eq!(d[8 + plaintext.len()..], tag);
    }

    #[test]
    fn ciphertext_matches_gcm_test_case_3() {
        // GCM ciphertext does not depend on AAD, so with test case 3's key
        // and IV (salt cafebabe has the top bit set = client→host, seq =
        // facedbaddecaf888) our sealer must reproduce its ciphertext exactly.
        let key: [u8; 16] = hex("feffe9928665731c6d6a8f9467308308").try_into().unwrap();
        let mut sealer =
            MediaSealer::new(&key, [0xca, 0xfe, 0xba, 0xbe], Direction::ClientToHost).unwrap();
        let mut payload = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        );
        let mut tag = [0u8; 16];
        sealer
            .seal_in_place(0xface_dbad_deca_f888, &mut payload, &mut tag)
            .unwrap();
        assert_eq!(payload, hex(TC3_CIPHERTEXT));
    }

    #[test]
    fn wrong_key_flipped_bit_and_wrong_seq_fail() {
        let (mut sealer, mut opener) = pair(Direction::HostToClient);
        let mut d = datagram_with(&[0x5a; 300]);
        sealer.seal_datagram(42, &mut d).unwrap();

        let mut other_key = KEY;
        other_key[3] ^= 1;
        let mut wrong = MediaOpener::new(&other_key, SALT, Direction::HostToClient).unwrap();
        assert_eq!(
            wrong.open_datagram(&mut d.clone()).unwrap_err(),
            CryptoError::AuthenticationFailed
        );
        let mut wrong_salt = MediaOpener::new(&KEY, [0, 0, 0, 1], Direction::HostToClient).unwrap();
        assert!(wrong_salt.open_datagram(&mut d.clone()).is_err());

        // Every single-bit flip anywhere (seq, body, tag) must be rejected.
        for byte in 0..d.len() {
            for bit in 0..8 {
                let mut tampered = d.clone();
                tampered[byte] ^= 1 << bit;
                assert!(opener.open_datagram(&mut tampered).is_err(), "{byte}:{bit}");
            }
        }
        // Right bytes under a different seq.
        let mut payload = d[8..d.len() - 16].to_vec();
        let tag: [u8; 16] = d[d.len() - 16..].try_into().unwrap();
        assert!(opener.open_in_place(43, &mut payload, &tag).is_err());
        opener.open_datagram(&mut d).unwrap();
    }

    #[test]
    fn directions_use_disjoint_nonces() {
        for seq in [0u64, 1, 77, u64::MAX] {
            let host = gcm_nonce(&SALT, Direction::HostToClient, seq);
            let client = gcm_nonce(&SALT, Direction::ClientToHost, seq);
            assert_ne!(host, client);
            assert_eq!(host[0] & 0x80, 0);
            assert_eq!(client[0] & 0x80, 0x80);
            assert_eq!(host[1..], client[1..]);
        }
        // The salt's own top bit is overridden, never leaked into the nonce.
        let high_salt = [0xff, 0, 0, 0];
        assert_eq!(gcm_nonce(&high_salt, Direction::HostToClient, 0)[0], 0x7f);

        let (mut host_sealer, mut host_traffic_opener) = pair(Direction::HostToClient);
        let (mut client_sealer, mut client_traffic_opener) = pair(Direction::ClientToHost);
        let mut from_host = datagram_with(&[1; 64]);
        let mut from_client = datagram_with(&[1; 64]);
        host_sealer.seal_datagram(0, &mut from_host).unwrap();
        client_sealer.seal_datagram(0, &mut from_client).unwrap();
        assert_ne!(from_host, from_client, "same seq, same key: must differ");
        // A packet reflected back to its sender does not open.
        assert!(client_traffic_opener
            .open_datagram(&mut from_host.clone())
            .is_err());
        assert!(host_traffic_opener
            .open_datagram(&mut from_client.clone())
            .is_err());
        host_traffic_opener.open_datagram(&mut from_host).unwrap();
        client_traffic_opener
            .open_datagram(&mut from_client)
            .unwrap();
    }

    #[test]
    fn zero_key_refused() {
        let zero = [0u8; 16];
        assert_eq!(
            MediaSealer::new(&zero, SALT, Direction::HostToClient).unwrap_err(),
            CryptoError::ZeroKey
        );
        assert_eq!(
            MediaOpener::new(&zero, SALT, Direction::ClientToHost).unwrap_err(),
            CryptoError::ZeroKey
        );
    }

    #[test]
    fn seq_reuse_refused() {
        let (mut sealer, _) = pair(Direction::HostToClient);
        let mut tag = [0u8; 16];
        sealer.seal_in_place(5, &mut [1, 2, 3], &mut tag).unwrap();
        for seq in [5, 4, 0] {
            assert_eq!(
                sealer.seal_in_place(seq, &mut [1, 2, 3], &mut tag),
                Err(CryptoError::SeqNotIncreasing { seq, last: 5 })
            );
        }
        sealer.seal_in_place(6, &mut [1, 2, 3], &mut tag).unwrap();
        assert_eq!(sealer.last_seq(), Some(6));
    }

    #[test]
    fn short_datagrams_are_errors() {
        let (mut sealer, mut opener) = pair(Direction::HostToClient);
        for len in 0..SEAL_OVERHEAD {
            let mut d = vec![0u8; len];
            assert!(matches!(
                sealer.seal_datagram(1, &mut d),
                Err(CryptoError::InvalidLength { .. })
            ));
            assert!(opener.open_datagram(&mut d).is_err());
        }
        // Exactly the overhead: an empty, authenticated payload.
        let mut d = vec![0u8; SEAL_OVERHEAD];
        sealer.seal_datagram(2, &mut d).unwrap();
        assert_eq!(opener.open_datagram(&mut d).unwrap().0, 2);
    }

    proptest! {
        #[test]
        fn random_payloads_round_trip_and_garbage_never_opens(
            payload in proptest::collection::vec(any::<u8>(), 0..2000),
            seq in any::<u64>(),
            garbage in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let (mut sealer, mut opener) = pair(Direction::ClientToHost);
            let mut d = datagram_with(&payload);
            sealer.seal_datagram(seq, &mut d).unwrap();
            let (got_seq, got) = opener.open_datagram(&mut d).unwrap();
            prop_assert_eq!(got_seq, seq);
            prop_assert_eq!(&*got, &payload[..]);
            let mut garbage = garbage;
            prop_assert!(opener.open_datagram(&mut garbage).is_err());
        }
    }
}
