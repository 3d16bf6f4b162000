//! Every kernel against the scalar twin and a plain SHA-256d, on random headers and targets.

use super::*;

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        std::array::from_fn(|_| self.next_u64() as u8)
    }
}

/// A target whose top word is `top` and whose lower words are random.
fn target_with_top(rng: &mut Rng, top: u32) -> [u8; 32] {
    let mut target = rng.bytes::<32>();
    target[28..32].copy_from_slice(&top.to_le_bytes());
    target
}

/// Every candidate in `start..start + count`, found by repeated scans as the miner does.
fn candidates(kernel: Kernel, job: &Job, start: u32, count: u32) -> Vec<u32> {
    let end = u64::from(start) + u64::from(count);
    let mut found = Vec::new();
    let mut from = u64::from(start);
    while from < end {
        match kernel.scan(job, from as u32, (end - from) as u32) {
            Some(nonce) => {
                found.push(nonce);
                from = u64::from(nonce) + 1;
            }
            None => break,
        }
    }
    found
}

fn bitcoin_genesis_header() -> [u8; 80] {
    let mut merkle_root = [0u8; 32];
    let display = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b";
    for (i, byte) in merkle_root.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&display[2 * i..2 * i + 2], 16).unwrap();
    }
    merkle_root.reverse();
    let mut header = [0u8; 80];
    header[0..4].copy_from_slice(&1u32.to_le_bytes());
    header[36..68].copy_from_slice(&merkle_root);
    header[68..72].copy_from_slice(&1_231_006_505u32.to_le_bytes());
    header[72..76].copy_from_slice(&0x1d00_ffffu32.to_le_bytes());
    header
}

/// Bitcoin's genesis target, 0xffff << 208, as little-endian bytes.
fn bitcoin_genesis_target() -> [u8; 32] {
    let mut target = [0u8; 32];
    target[26] = 0xff;
    target[27] = 0xff;
    target
}

#[test]
fn scalar_twin_matches_plain_sha256d() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..64 {
        let job = Job::new(&rng.bytes(), &rng.bytes());
        let nonce = rng.next_u32();
        let hash = job.hash(nonce);
        let h7 = u32::from_be_bytes(hash[28..32].try_into().unwrap());
        assert_eq!(scalar::final_h7(&job, nonce), h7);
    }
}

#[test]
fn every_kernel_finds_the_same_candidates_as_the_scalar_twin() {
    let mut rng = Rng(0x5eed_0002);
    let kernels = Kernel::available();
    for round in 0..24 {
        let header = rng.bytes::<80>();
        // About one nonce in 2^shift is a candidate: often enough to test every lane.
        let shift = 2 + round % 6;
        let target = target_with_top(&mut rng, u32::MAX >> shift);
        let job = Job::new(&header, &target);
        let start = match round % 4 {
            0 => rng.next_u32(),
            1 => u32::MAX - 700,
            2 => 0,
            _ => rng.next_u32() & !15,
        };
        let count = (500 + rng.next_u32() % 300).min(u32::MAX - start) + 1;
        let expected = candidates_scalar(&job, start, count);
        for &kernel in &kernels {
            assert_eq!(
                candidates(kernel, &job, start, count),
                expected,
                "{kernel} round {round}"
            );
        }
        for &nonce in expected.iter().take(4) {
            let hash = job.hash(nonce);
            let top = u32::from_le_bytes(hash[28..32].try_into().unwrap());
            assert!(top <= job.target_top, "scalar candidate {nonce} is not one");
        }
    }
}

fn candidates_scalar(job: &Job, start: u32, count: u32) -> Vec<u32> {
    let end = u64::from(start) + u64::from(count);
    (u64::from(start)..end)
        .map(|n| n as u32)
        .filter(|&nonce| {
            let hash = job.hash(nonce);
            let by_hash = u32::from_le_bytes(hash[28..32].try_into().unwrap()) <= job.target_top;
            assert_eq!(
                job.is_candidate(scalar::final_h7(job, nonce)),
                by_hash,
                "nonce {nonce}"
            );
            by_hash
        })
        .collect()
}

#[test]
fn every_kernel_respects_range_edges() {
    let mut rng = Rng(0x5eed_0003);
    // Every nonce is a candidate: a scan must return exactly its first nonce.
    let job = Job::new(&rng.bytes(), &[0xff; 32]);
    for &kernel in &Kernel::available() {
        for (start, count) in [
            (0, 1),
            (5, 1),
            (15, 2),
            (17, 40),
            (u32::MAX, 1),
            (u32::MAX - 20, 21),
        ] {
            assert_eq!(
                kernel.scan(&job, start, count),
                Some(start),
                "{kernel} {start}+{count}"
            );
        }
        assert_eq!(kernel.scan(&job, 7, 0), None, "{kernel} empty range");
    }
    // No nonce is a candidate: every lane past the end must be ignored too.
    let job = Job::new(&rng.bytes(), &[0; 32]);
    for &kernel in &Kernel::available() {
        assert_eq!(find(kernel, &job, u32::MAX - 100, 101), None, "{kernel}");
    }
}

#[test]
fn every_kernel_finds_bitcoins_genesis_nonce() {
    const GENESIS_NONCE: u32 = 2_083_236_893;
    let job = Job::new(&bitcoin_genesis_header(), &bitcoin_genesis_target());
    for &kernel in &Kernel::available() {
        let (nonce, hash) =
            find(kernel, &job, GENESIS_NONCE - 60_013, 100_000).expect("genesis nonce");
        assert_eq!(nonce, GENESIS_NONCE, "{kernel}");
        let mut display = hash;
        display.reverse();
        let hex: String = display.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex, "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
            "{kernel}"
        );
    }
}

#[test]
fn kernel_names_parse_and_round_trip() {
    for kernel in Kernel::ALL {
        assert_eq!(kernel.name().parse::<Kernel>(), Ok(kernel));
    }
    assert_eq!("SHA-NI".parse::<Kernel>(), Ok(Kernel::ShaNi));
    assert!(matches!(
        "sha3".parse::<Kernel>(),
        Err(MinerError::UnknownKernel(_))
    ));
    assert_eq!(
        Kernel::from_name_available("portable"),
        Ok(Kernel::Portable)
    );
    assert!(Kernel::available().contains(&Kernel::best()));
    assert_eq!(Kernel::available().last(), Some(&Kernel::Portable));
}
