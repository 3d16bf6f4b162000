//! Who peers with whom in a testnet: `full`, `line`, `ring`, `star` or `random:K`.
//!
//! A topology is a set of undirected links between node indices. [`Topology::links`] draws
//! it (deterministically for `random:K`: the seed goes into a SplitMix64 generator defined
//! here, so a seed means the same graph on every machine and every version of `rand`).
//!
//! Nodes discover one another (Kademlia) and would drift towards a full mesh, so the lab
//! enforces a topology the way a user could: each node bans every node it must not peer with
//! (`setban`, visible in `listbanned`) and is given its neighbours as peers (`addnode`).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// An undirected link between two node indices, smaller index first.
pub type Link = (usize, usize);

/// How the nodes of a testnet are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Topology {
    /// Every node peers with every other.
    #[default]
    Full,
    /// node0 – node1 – … – nodeN-1.
    Line,
    /// A line closed into a circle.
    Ring,
    /// node0 in the middle, peering with every other node; no other links.
    Star,
    /// Each node has K peers drawn at random (one node K+1 when N·K is odd), connected
    /// overall.
    Random {
        /// Peers per node.
        k: usize,
    },
}

/// Why a topology cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// Not one of the known names.
    #[error("unknown topology {0:?} (known: full, line, ring, star, random:K)")]
    Unknown(String),
    /// `random:K` with a K that is not a positive number.
    #[error("random:K needs a positive number of peers K, not {0:?}")]
    BadDegree(String),
    /// More peers per node than there are other nodes.
    #[error("random:{k} needs more than {k} nodes (there are {n})")]
    DegreeTooHigh {
        /// Peers per node asked for.
        k: usize,
        /// Nodes.
        n: usize,
    },
    /// One peer each pairs the nodes off, which cannot connect more than two.
    #[error("random:1 cannot connect {0} nodes (each would have one peer): use K of 2 or more")]
    DegreeTooLow(usize),
    /// No connected graph was found (does not happen for valid K; a bound on the search).
    #[error("found no connected random:{k} graph on {n} nodes")]
    NotFound {
        /// Peers per node.
        k: usize,
        /// Nodes.
        n: usize,
    },
}

impl FromStr for Topology {
    type Err = TopologyError;

    fn from_str(text: &str) -> Result<Topology, TopologyError> {
        match text {
            "full" => Ok(Topology::Full),
            "line" => Ok(Topology::Line),
            "ring" => Ok(Topology::Ring),
            "star" => Ok(Topology::Star),
            _ => match text.strip_prefix("random:") {
                Some(k) => match k.parse::<usize>() {
                    Ok(k) if k > 0 => Ok(Topology::Random { k }),
                    _ => Err(TopologyError::BadDegree(k.to_owned())),
                },
                None => Err(TopologyError::Unknown(text.to_owned())),
            },
        }
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topology::Full => f.write_str("full"),
            Topology::Line => f.write_str("line"),
            Topology::Ring => f.write_str("ring"),
            Topology::Star => f.write_str("star"),
            Topology::Random { k } => write!(f, "random:{k}"),
        }
    }
}

impl Topology {
    /// Whether drawing the links uses the seed.
    pub fn is_random(&self) -> bool {
        matches!(self, Topology::Random { .. })
    }

    /// The links between `n` nodes, sorted; `seed` only matters for `random:K`.
    pub fn links(&self, n: usize, seed: u64) -> Result<BTreeSet<Link>, TopologyError> {
        let chain = |closed: bool| {
            let mut links: BTreeSet<Link> = (1..n).map(|i| (i - 1, i)).collect();
            if closed && n >= 3 {
                links.insert((0, n - 1));
            }
            links
        };
        match *self {
            Topology::Full => Ok((0..n)
                .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                .collect()),
            Topology::Line => Ok(chain(false)),
            Topology::Ring => Ok(chain(true)),
            Topology::Star => Ok((1..n).map(|i| (0, i)).collect()),
            Topology::Random { k } => random_links(n, k, seed),
        }
    }
}

/// The neighbours of node `index` under `links`.
pub fn neighbours(links: &BTreeSet<Link>, index: usize) -> BTreeSet<usize> {
    links
        .iter()
        .filter_map(|&(a, b)| match (a == index, b == index) {
            (true, _) => Some(b),
            (_, true) => Some(a),
            _ => None,
        })
        .collect()
}

/// Whether every node of `0..n` can reach every other over `links`.
pub fn is_connected(n: usize, links: &BTreeSet<Link>) -> bool {
    if n == 0 {
        return true;
    }
    let mut seen = vec![false; n];
    let mut stack = vec![0];
    seen[0] = true;
    while let Some(node) = stack.pop() {
        for next in neighbours(links, node) {
            if !seen[next] {
                seen[next] = true;
                stack.push(next);
            }
        }
    }
    seen.into_iter().all(|s| s)
}

/// A connected graph on `n` nodes where every node has `k` peers (one has `k + 1` when
/// `n·k` is odd): random pairing of "stubs", restarted on a dead end or a disconnected
/// result.
fn random_links(n: usize, k: usize, seed: u64) -> Result<BTreeSet<Link>, TopologyError> {
    if n <= 1 {
        return Ok(BTreeSet::new());
    }
    if k >= n {
        return Err(TopologyError::DegreeTooHigh { k, n });
    }
    if k == 1 && n > 2 {
        return Err(TopologyError::DegreeTooLow(n));
    }
    if k == n - 1 {
        return Topology::Full.links(n, seed);
    }
    let mut rng = SplitMix64(seed);
    for _ in 0..10_000 {
        let mut wanted = vec![k; n];
        if n * k % 2 == 1 {
            wanted[rng.below(n)] += 1;
        }
        if let Some(links) = pair_stubs(&mut wanted, &mut rng)
            && is_connected(n, &links)
        {
            return Ok(links);
        }
    }
    Err(TopologyError::NotFound { k, n })
}

/// Links nodes with spare degree in `wanted` at random until none is left, or `None` at a
/// dead end (the only nodes left wanting peers are already linked).
fn pair_stubs(wanted: &mut [usize], rng: &mut SplitMix64) -> Option<BTreeSet<Link>> {
    let mut links = BTreeSet::new();
    loop {
        let open: Vec<usize> = (0..wanted.len()).filter(|&i| wanted[i] > 0).collect();
        let Some(&a) = open.iter().max_by_key(|&&i| (wanted[i], rng.next())) else {
            return Some(links);
        };
        let choices: Vec<usize> = open
            .into_iter()
            .filter(|&b| b != a && !links.contains(&(a.min(b), a.max(b))))
            .collect();
        if choices.is_empty() {
            return None;
        }
        let b = choices[rng.below(choices.len())];
        links.insert((a.min(b), a.max(b)));
        wanted[a] -= 1;
        wanted[b] -= 1;
    }
}

/// Sebastiano Vigna's SplitMix64: tiny, seedable and fixed forever, unlike a library RNG
/// whose stream may change between versions.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (the modulo bias is below 2^-58 for a testnet's sizes).
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn degrees(n: usize, links: &BTreeSet<Link>) -> Vec<usize> {
        (0..n).map(|i| neighbours(links, i).len()).collect()
    }

    #[test]
    fn names_round_trip_and_bad_ones_are_explained() {
        for text in ["full", "line", "ring", "star", "random:3"] {
            assert_eq!(text.parse::<Topology>().unwrap().to_string(), text);
        }
        assert!(matches!(
            "mesh".parse::<Topology>(),
            Err(TopologyError::Unknown(_))
        ));
        for bad in ["random:", "random:0", "random:x", "random:-1"] {
            let err = bad.parse::<Topology>().unwrap_err().to_string();
            assert!(err.contains("positive number of peers"), "{bad}: {err}");
        }
    }

    #[test]
    fn fixed_shapes_have_the_links_they_promise() {
        let n = 6;
        let full = Topology::Full.links(n, 0).unwrap();
        assert_eq!(full.len(), n * (n - 1) / 2);
        assert_eq!(degrees(n, &full), vec![5; 6]);
        let line = Topology::Line.links(n, 0).unwrap();
        assert_eq!(degrees(n, &line), vec![1, 2, 2, 2, 2, 1]);
        assert!(line.contains(&(2, 3)) && !line.contains(&(0, 5)));
        let ring = Topology::Ring.links(n, 0).unwrap();
        assert_eq!(degrees(n, &ring), vec![2; 6]);
        assert!(ring.contains(&(0, 5)));
        let star = Topology::Star.links(n, 0).unwrap();
        assert_eq!(degrees(n, &star), vec![5, 1, 1, 1, 1, 1]);
        for links in [&full, &line, &ring, &star] {
            assert!(is_connected(n, links));
        }
        // Small networks degenerate gracefully: a ring of two is a line, one node has none.
        assert_eq!(
            Topology::Ring.links(2, 0).unwrap(),
            BTreeSet::from([(0, 1)])
        );
        assert!(Topology::Star.links(1, 0).unwrap().is_empty());
    }

    #[test]
    fn random_k_gives_every_node_k_peers_connected_and_reproducibly() {
        for n in 2..=32usize {
            for k in 2..n.min(8) {
                for seed in 0..5 {
                    let links = Topology::Random { k }.links(n, seed).unwrap();
                    assert!(is_connected(n, &links), "n={n} k={k} seed={seed}");
                    let mut degrees = degrees(n, &links);
                    degrees.sort_unstable();
                    let mut expected = vec![k; n];
                    if n * k % 2 == 1 {
                        expected[n - 1] = k + 1;
                    }
                    assert_eq!(degrees, expected, "n={n} k={k} seed={seed}");
                    assert_eq!(links, Topology::Random { k }.links(n, seed).unwrap());
                }
            }
        }
        let a = Topology::Random { k: 3 }.links(20, 1).unwrap();
        let b = Topology::Random { k: 3 }.links(20, 2).unwrap();
        assert_ne!(a, b, "different seeds draw different graphs");
    }

    #[test]
    fn impossible_random_graphs_are_refused() {
        assert_eq!(
            Topology::Random { k: 5 }.links(5, 0),
            Err(TopologyError::DegreeTooHigh { k: 5, n: 5 })
        );
        assert_eq!(
            Topology::Random { k: 1 }.links(4, 0),
            Err(TopologyError::DegreeTooLow(4))
        );
        assert_eq!(
            Topology::Random { k: 1 }.links(2, 0).unwrap(),
            BTreeSet::from([(0, 1)])
        );
        assert_eq!(
            Topology::Random { k: 4 }.links(5, 0).unwrap(),
            Topology::Full.links(5, 0).unwrap()
        );
    }
}
