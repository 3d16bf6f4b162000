//! The midstate SHA-256d algorithm written once for any SIMD width, one nonce per 32-bit lane.
//!
//! [`sha256d_h7!`] expands inside a kernel module that defines the lane type's operations as
//! functions in scope: `splat`, `add`, `big_sigma0`, `big_sigma1`, `small_sigma0`,
//! `small_sigma1`, `ch` and `maj`. The expansion is fully unrolled with constant message
//! indices, so the message schedule lives in registers, the zero padding words fold away at
//! compile time, and everything that depends only on the header template (the first three
//! rounds of the second block, the start of its schedule, the first round of the second hash)
//! is loop-invariant for the caller's nonce loop and is hoisted out of it by the compiler.

/// One SHA-256 round on lane vectors, computing the message word first when `sched` is `yes`.
macro_rules! round {
    ($w:ident, $t:expr, $sched:tt, $a:ident $b:ident $c:ident $d:ident $e:ident $f:ident $g:ident $h:ident) => {
        schedule_word!($w, $t, $sched);
        let t1 = add(
            add(add(add($h, splat(K[$t])), $w[$t & 15]), ch($e, $f, $g)),
            big_sigma1($e),
        );
        $d = add($d, t1);
        $h = add(add(t1, big_sigma0($a)), maj($a, $b, $c));
    };
}

/// `W[t]` into the 16-word ring `w` (FIPS 180-4 §6.2.2 step 1), or nothing for `t < 16`.
macro_rules! schedule_word {
    ($w:ident, $t:expr, no) => {};
    ($w:ident, $t:expr, yes) => {
        $w[$t & 15] = add(
            add(small_sigma1($w[($t + 14) & 15]), $w[($t + 9) & 15]),
            add(small_sigma0($w[($t + 1) & 15]), $w[$t & 15]),
        );
    };
}

/// Eight rounds starting at round `t`, the state names rotating instead of the values.
macro_rules! eight_rounds {
    ($w:ident, $t:expr, $sched:tt, $a:ident $b:ident $c:ident $d:ident $e:ident $f:ident $g:ident $h:ident) => {
        round!($w, $t, $sched, $a $b $c $d $e $f $g $h);
        round!($w, $t + 1, $sched, $h $a $b $c $d $e $f $g);
        round!($w, $t + 2, $sched, $g $h $a $b $c $d $e $f);
        round!($w, $t + 3, $sched, $f $g $h $a $b $c $d $e);
        round!($w, $t + 4, $sched, $e $f $g $h $a $b $c $d);
        round!($w, $t + 5, $sched, $d $e $f $g $h $a $b $c);
        round!($w, $t + 6, $sched, $c $d $e $f $g $h $a $b);
        round!($w, $t + 7, $sched, $b $c $d $e $f $g $h $a);
    };
}

/// The final state word `H7` of SHA-256d for every lane: `$midstate` (`[u32; 8]`) and `$tail`
/// (`[u32; 3]`, words 0..3 of the second block) are common to all lanes, `$w3` holds each
/// lane's nonce byte-swapped (message word 3). The second hash stops after the `e` half of
/// round 60, which is where `H7` is decided (see the parent module).
macro_rules! sha256d_h7 {
    ($midstate:expr, $tail:expr, $w3:expr) => {{
        let mid: [u32; 8] = $midstate;
        let tail: [u32; 3] = $tail;

        let mut w = [splat(0); 16];
        w[0] = splat(tail[0]);
        w[1] = splat(tail[1]);
        w[2] = splat(tail[2]);
        w[3] = $w3;
        w[4] = splat(PAD_WORD);
        w[15] = splat(HEADER_BITS);
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = mid.map(|x| splat(x));
        eight_rounds!(w, 0, no, a b c d e f g h);
        eight_rounds!(w, 8, no, a b c d e f g h);
        eight_rounds!(w, 16, yes, a b c d e f g h);
        eight_rounds!(w, 24, yes, a b c d e f g h);
        eight_rounds!(w, 32, yes, a b c d e f g h);
        eight_rounds!(w, 40, yes, a b c d e f g h);
        eight_rounds!(w, 48, yes, a b c d e f g h);
        eight_rounds!(w, 56, yes, a b c d e f g h);
        let digest = [
            add(a, splat(mid[0])),
            add(b, splat(mid[1])),
            add(c, splat(mid[2])),
            add(d, splat(mid[3])),
            add(e, splat(mid[4])),
            add(f, splat(mid[5])),
            add(g, splat(mid[6])),
            add(h, splat(mid[7])),
        ];

        let mut w = [splat(0); 16];
        w[..8].copy_from_slice(&digest);
        w[8] = splat(PAD_WORD);
        w[15] = splat(DIGEST_BITS);
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = IV.map(|x| splat(x));
        eight_rounds!(w, 0, no, a b c d e f g h);
        eight_rounds!(w, 8, no, a b c d e f g h);
        eight_rounds!(w, 16, yes, a b c d e f g h);
        eight_rounds!(w, 24, yes, a b c d e f g h);
        eight_rounds!(w, 32, yes, a b c d e f g h);
        eight_rounds!(w, 40, yes, a b c d e f g h);
        eight_rounds!(w, 48, yes, a b c d e f g h);
        round!(w, 56, yes, a b c d e f g h);
        round!(w, 57, yes, h a b c d e f g);
        round!(w, 58, yes, g h a b c d e f);
        round!(w, 59, yes, f g h a b c d e);
        // Round 60 sees the state as (e f g h a b c d); only its new `e` = h + T1 matters.
        schedule_word!(w, 60, yes);
        let t1 = add(add(add(add(d, splat(K[60])), w[60 & 15]), ch(a, b, c)), big_sigma1(a));
        add(add(h, t1), splat(IV[7]))
    }};
}

pub(super) use {eight_rounds, round, schedule_word, sha256d_h7};
