/*
 * shmq ring slot protocol: a Promela model for spin.
 *
 * What is modelled (libshmq/src/ring.c, wait.c, repair.c):
 *   - a ring of NSLOT slots, each with one atomic state word
 *     (lap, phase, deliveries, owner), changed only by load, store, CAS;
 *   - head and tail as monotone position hints that anyone may help;
 *   - producers: claim FREE -> WRITING(me), help tail, write payload,
 *     publish READY (or abort to SKIP), post not-empty;
 *   - consumers: re-lease RETRY slots first (if retry_count > 0, through
 *     the retry bitmap), else scan from head: lease READY, free SKIP, pass
 *     LEASED/RETRY,
 *     stop at WRITING/FREE (empty); then ack (-> FREE(lap+1)) or nack
 *     (-> RETRY); past MAXD deliveries a message is dead-lettered;
 *   - eventcounts (not-empty, not-full): futex word, bit 0 = waiters,
 *     bits 1.. = epoch; futex_wait is an atomic compare-and-block,
 *     futex_wake wakes every sleeper on the word;
 *   - crashes: a producer or consumer may stop for good between any two
 *     steps (at most MAXCRASH in all, never the last live consumer);
 *   - making a slot RETRY (nack, repair): retry_count++, CAS to RETRY (N1),
 *     set the slot's retry bit (B1); re-leasing one: CAS (C4),
 *     retry_count--, clear the bit (B2: clear, re-load the word, set the
 *     bit again if the slot went RETRY meanwhile);
 *   - the repairer (shmqd running repair for a dead token): WRITING(dead)
 *     -> SKIP, LEASED(dead) -> RETRY, sets the bit of every RETRY slot,
 *     then wakes every waiter; it may be restarted in the middle of a pass
 *     and run the whole repair again.
 *
 * One step of a process = one access to shared memory (load, store, CAS,
 * fetch_or, futex call) together with the local computation after it;
 * "atomic" below never joins two accesses to shared memory, only an
 * access with ghost bookkeeping.
 *
 * Properties (see README.md): assertions for unique ownership, ack-once,
 * bounded duplicates and the retry_count invariant; the valid-end-state
 * check for no stuck slot and no lost wakeup; a non-progress check (-DNP)
 * for livelock.
 *
 * Switches (-D...):
 *   NSLOT NPROD NMSGP NCONS MAXD MAXCRASH MAXABORT MAXNACK MAXRESTART
 *   CRASH_PROD CRASH_CONS   model size and who may crash (defaults below)
 * Known-bad variants, each of which spin must reject (check.sh checks it):
 *   BROKEN_EC=1        waiter sleeps right after setting the waiters bit,
 *                      without re-checking the ring
 *   BROKEN_EC=2        poster reads the eventcount word before its
 *                      publishing store is visible (no full fence)
 *   RC_AFTER           retry_count++ after the CAS that makes a slot RETRY
 *   TAIL_RELOAD        a producer that finds the slot a lap ahead of its
 *                      position re-reads tail instead of passing the position
 *   HEAD_RELOAD        the same on the consumer side: re-read head
 *   ABORT_NO_POST      producer abort (WRITING -> SKIP) does not post
 *                      not-empty
 *   REPAIR_COND_WAKE   repair wakes like an ordinary poster (only if the
 *                      waiters bit is set) instead of always
 *   BIT_NO_REPAIR      repair does not set the retry bit of RETRY slots it
 *                      does not itself make RETRY
 */

#ifndef NSLOT
#define NSLOT 2
#endif
#ifndef NPROD
#define NPROD 2
#endif
#ifndef NMSGP
#define NMSGP 2         /* messages per producer */
#endif
#ifndef NCONS
#define NCONS 2
#endif
#ifndef MAXD
#define MAXD 2          /* max_deliveries */
#endif
#ifndef MAXCRASH
#define MAXCRASH 1      /* producer/consumer crashes in all */
#endif
#ifndef CRASH_PROD
#define CRASH_PROD 1    /* producers may crash */
#endif
#ifndef CRASH_CONS
#define CRASH_CONS 1    /* consumers may crash (never the last live one) */
#endif
#ifndef MAXABORT
#define MAXABORT 1      /* producer aborts in all */
#endif
#ifndef MAXNACK
#define MAXNACK 1       /* consumer nacks in all */
#endif
#ifndef MAXRESTART
#define MAXRESTART 1    /* repairer restarts in all */
#endif

#ifndef EC_MOD
#define EC_MOD 256      /* eventcount word values: 1 waiters bit + 7 epoch bits */
#endif

#if NSLOT != 2
#error "the retry_count invariant (NRETRY) is written for NSLOT == 2"
#endif

#define NMSG  (NPROD * NMSGP)
#define NPROC (NPROD + NCONS)

/* phases; FREE is 0 so that the initial all-zero state is FREE(lap 0) */
#define FREE    0
#define WRITING 1
#define READY   2
#define LEASED  3
#define RETRY   4
#define SKIP    5
#define NONE    15      /* owner: nobody */

/* eventcounts */
#define NE 0            /* not-empty */
#define NF 1            /* not-full */

/* ghost message states */
#define M_UNSENT  0
#define M_WRITING 1     /* claimed, not published */
#define M_READY   2     /* published: READY, LEASED or RETRY */
#define M_SKIPPED 3     /* never published (abort, or producer died): SKIP */
#define M_DONE    4     /* acked, dead-lettered, or its SKIP slot freed */

/* ---- shared memory ------------------------------------------------------ */

/* slot state word, one atomic unit: lap | phase | deliveries | owner */
byte slap[NSLOT];
byte sph[NSLOT];
byte sdlv[NSLOT];
byte sown[NSLOT];

byte  tail;             /* hints */
byte  head;
short retry_count;      /* an upper bound on the slots in RETRY */
bit   rbit[NSLOT];      /* retry bitmap: how consumers find RETRY slots */
byte  ec[2];            /* eventcount words: bit 0 waiters, bits 1.. epoch */

/* ---- ghost state (not in shared memory) --------------------------------- */

byte slp[NPROC];        /* futex: 0 awake, 1 + word index while blocked */
byte smsg[NSLOT];       /* which message the slot carries (the payload) */
byte held[NSLOT];       /* live processes that believe they own the slot */
byte hold[NPROC];       /* 1 + slot a process believes it owns, 0 none */
byte busy;              /* slots not FREE */
byte mst[NMSG];         /* M_* */
byte delivered[NMSG];   /* deliveries to the application */
byte dlqc[NMSG];        /* copies made into the dead-letter ring */
byte nacks[NMSG];
byte diedholding[NMSG]; /* lessees that died holding the message */
bit  kill[NPROC];       /* crashed: the process stops at once */
bit  dead[NPROC];       /* crashed, as the supervisor learns it */
bit  fin[NPROC];        /* producer done / consumer exited */
bit  rep[NPROC];        /* repair of a dead process taken up */
byte ndead;             /* crashes */
byte nrep;              /* repairs taken up */
byte calive = NCONS;    /* consumers alive */
byte pfin;              /* producers done or dead */
byte aborts;
byte nnack;
byte restarts;

/* Every producer is done or dead and every slot is FREE: nothing more can
 * happen in the ring.  Lets consumers exit (the harness closing the queue);
 * never true while any work is left. */
#define FINISHED (pfin == NPROD && busy == 0)

#define NRETRY ((sph[0] == RETRY -> 1 : 0) + (sph[1] == RETRY -> 1 : 0))

/* ---- eventcount primitives ---------------------------------------------- */

/* futex_wake(word, INT_MAX): wakes every process blocked on the word */
#define WAKE1(w, q) if :: slp[q] == w + 1 -> slp[q] = 0 :: else -> skip fi
inline futex_wake(w)
{
    d_step {
        WAKE1(w, 0); WAKE1(w, 1);
#if NPROC > 2
        WAKE1(w, 2);
#endif
#if NPROC > 3
        WAKE1(w, 3);
#endif
#if NPROC > 4
        WAKE1(w, 4);
#endif
#if NPROC > 5
        WAKE1(w, 5);
#endif
        skip
    }
}

/* ec_post, second half: if someone waits (bit 0 of the value read after
 * the fence), CAS(word, v, v + 1) clears the bit and bumps the epoch; the
 * CAS winner wakes all: at most one FUTEX_WAKE per sleep.  Continues at L.
 * (Macros, not inlines, because they take a label.) */
#define EC_POST_CHECK(w, L) \
    atomic { if :: !(pv & 1) -> pv = 0; goto L :: else -> skip fi }; \
    atomic { \
        if \
        :: ec[w] == pv -> ec[w] = (pv + 1) % EC_MOD; pv = 0 \
        :: else -> pv = 0; goto L \
        fi \
    }; \
    futex_wake(w); \
    goto L

/* ec_post: (the state change is published) full fence; v = load(word) */
#define EC_POST(w, L) \
    atomic { pv = ec[w]; if :: !(pv & 1) -> pv = 0; goto L :: else -> skip fi }; \
    EC_POST_CHECK(w, L)

/* ec_prepare: v = load(word); if (!(v & 1)) v = fetch_or(word, 1) | 1;
 * then the caller re-checks the ring before sleeping */
inline ec_prepare(w)
{
    atomic { v = ec[w]; if :: (v & 1) -> goto prepared :: else -> skip fi }
    atomic { v = ec[w] | 1; ec[w] = v }     /* fetch_or: one atomic RMW */
prepared:
    armed = 1
}

/* futex_wait(word, v): blocks only if word == v, atomically, until woken.
 * Consumers may also leave once the run is FINISHED. */
inline futex_wait(w, extra)
{
    atomic {
        if
        :: ec[w] == v -> slp[_pid] = w + 1
        :: else -> skip
        fi
    }
    atomic { (slp[_pid] == 0 || extra) -> slp[_pid] = 0; v = 0; armed = 0 }
}

/* ---- producer ----------------------------------------------------------- */

active [NPROD] proctype Producer()
{
    byte k, m, pos, i, wl, wp, v, pv;
    bit armed;

    {
    assert(_pid < NPROD);
top:
    atomic {
        if
        :: k == NMSGP -> fin[_pid] = 1; pfin++; goto done
        :: else -> m = _pid * NMSGP + k; pos = tail    /* load tail */
        fi
    }
look:
    atomic {
        /* load the slot word at pos */
        assert(pos < NMSG);
        i = pos % NSLOT; wl = slap[i]; wp = sph[i];
        if
        :: wl == pos / NSLOT && wp == FREE -> goto claim
        :: wl == pos / NSLOT && wp != FREE -> wl = 0; wp = 0; goto pass
        :: wl > pos / NSLOT ->
            wl = 0; wp = 0;
#ifdef TAIL_RELOAD
            pos = 0; goto reload
#else
            goto pass           /* pos was used and freed already: pass it */
#endif
        :: wl < pos / NSLOT ->
            /* the slot still holds the previous lap: full, wait for not-full */
            wl = 0; wp = 0; pos = 0;
            if :: !armed -> goto pprep :: else -> goto psleep fi
        fi
    }
pass:
    /* help: CAS(tail, pos, pos + 1); next position */
    atomic { if :: tail == pos -> tail = pos + 1 :: else -> skip fi; pos++; goto look }
reload:
    atomic { pos = tail; goto look }
pprep:
    ec_prepare(NF); goto reload         /* then re-check */
psleep:
    futex_wait(NF, false); goto reload

claim:
    /* CAS FREE(lap) -> WRITING(lap, me) */
    atomic {
        if
        :: slap[i] == wl && sph[i] == FREE ->
            sph[i] = WRITING; sown[i] = _pid; sdlv[i] = 0;
            assert(held[i] == 0);               /* unique ownership */
            held[i] = 1; hold[_pid] = i + 1;
            smsg[i] = m; assert(mst[m] == M_UNSENT); mst[m] = M_WRITING;
            busy++; wl = 0; wp = 0; armed = 0; v = 0
        :: else -> wl = 0; wp = 0; goto look
        fi
    }
    /* help: CAS(tail, pos, pos + 1), failure ignored */
    atomic { if :: tail == pos -> tail = pos + 1 :: else -> skip fi; pos = 0 }
    /* write header and payload: private to the owner, not modelled */
#if BROKEN_EC == 2
    pv = ec[NE];                /* the load is performed before the store */
#endif
    if
    :: atomic {
        aborts < MAXABORT ->
        /* abort: store WRITING(me) -> SKIP(lap) */
        assert(sph[i] == WRITING && sown[i] == _pid);
        sph[i] = SKIP; sown[i] = NONE;
        held[i] = 0; hold[_pid] = 0; aborts++;
        mst[m] = M_SKIPPED; i = 0; m = 0; k++
       }
#ifdef ABORT_NO_POST
        pv = 0; goto top
#endif
    :: atomic {
        /* publish: store READY(lap, 0, NONE) */
        assert(sph[i] == WRITING && sown[i] == _pid);
        sph[i] = READY; sown[i] = NONE;
        held[i] = 0; hold[_pid] = 0;
        mst[m] = M_READY; i = 0; m = 0; k++
       }
    fi;
#if BROKEN_EC == 2
    EC_POST_CHECK(NE, top);
#else
    EC_POST(NE, top);
#endif
done:
    skip
    } unless {
        /* crashed: the Killer did the bookkeeping; stop here for good */
        kill[_pid] -> d_step { k = 0; m = 0; pos = 0; i = 0; wl = 0; wp = 0; v = 0; pv = 0; armed = 0 }
    }
}

/* ---- consumer ----------------------------------------------------------- */

active [NCONS] proctype Consumer()
{
    byte pos, i, wl, wp, wd, m, v, pv, j, rb;
    bit armed;

    {
    assert(_pid >= NPROD && _pid < NPROC);
top:
    atomic {
        if
        :: FINISHED -> goto done
        :: else -> skip
        fi;
        /* 1. redeliveries first: load retry_count */
        if
        :: retry_count > 0 -> goto rload
        :: else -> skip
        fi
    }
headscan:
    /* 2. new messages: pos = head */
    atomic { pos = head; goto look }

rload:
    /* load the retry bitmap (one word) */
    atomic { rb = (rbit[0] -> 1 : 0) + (rbit[1] -> 2 : 0); i = 0 }
rscan:
    atomic {
        /* next set bit */
        do
        :: i < NSLOT && !(rb & (1 << i)) -> i++
        :: else -> break
        od;
        if
        :: i == NSLOT -> i = 0; rb = 0; goto headscan
        :: else -> skip
        fi;
        /* load the slot word */
        wl = slap[i]; wp = sph[i]; wd = sdlv[i];
        if
        :: wp == RETRY -> goto rcas
        :: else -> wl = 0; wp = 0; wd = 0; goto rclear
        fi
    }
rclear:
    /* B2 for a bit whose slot is not RETRY: clear it, re-load the word,
     * set it back if the slot went RETRY meanwhile */
    atomic { rbit[i] = 0 }
    atomic { if :: sph[i] == RETRY -> skip :: else -> i++; goto rscan fi }
    atomic { rbit[i] = 1; i++; goto rscan }
rcas:
    /* C4: CAS RETRY(lap, d, NONE) -> LEASED(lap, d + 1, me) */
    atomic {
        if
        :: slap[i] == wl && sph[i] == RETRY && sdlv[i] == wd && sown[i] == NONE ->
            sph[i] = LEASED; sdlv[i] = wd + 1; sown[i] = _pid;
            assert(held[i] == 0);               /* unique ownership */
            held[i] = 1; hold[_pid] = i + 1;
            m = smsg[i]; wl = 0; rb = 0;
            assert(mst[m] == M_READY);
            if
            :: wd + 1 <= MAXD ->
                delivered[m]++;                 /* bounded duplicates */
                assert(delivered[m] <= 1 + diedholding[m] + nacks[m])
            :: else -> skip
            fi
        :: else -> wl = 0; wp = 0; wd = 0; i++; goto rscan
        fi
    }
    /* retry_count--: after the CAS, so it never undercounts */
    atomic {
#ifndef RC_AFTER
        assert(retry_count > 0);
#endif
        retry_count--
    }
    /* B2: clear the bit (the word is ours now: its re-load cannot see
     * RETRY, so nothing is set back) */
    atomic {
        rbit[i] = 0;
        if
        :: wd + 1 <= MAXD -> wd = 0; wp = 0; goto deliver
        :: else -> wd = 0; wp = 0
        fi
    }
    /* dead-letter: copy into the dead-letter ring ... */
    atomic {
        dlqc[m]++;
        assert(dlqc[m] <= 1 + diedholding[m])
    }
    /* ... then CAS LEASED(lap, d, me) -> FREE(lap + 1) */
    atomic {
        assert(sph[i] == LEASED && sown[i] == _pid);    /* cannot fail */
        slap[i]++; sph[i] = FREE; sown[i] = NONE; sdlv[i] = 0; busy--;
        held[i] = 0; hold[_pid] = 0;
        assert(mst[m] == M_READY); mst[m] = M_DONE;     /* freed once */
        delivered[m] = 0; dlqc[m] = 0; nacks[m] = 0; diedholding[m] = 0;
        smsg[i] = 0; i = 0; m = 0; armed = 0
    }
    EC_POST(NF, top);

look:
    atomic {
        /* load the slot word at pos */
        assert(pos <= NMSG);
        i = pos % NSLOT; wl = slap[i]; wp = sph[i];
        if
        :: wl == pos / NSLOT && wp == READY -> goto lease
        :: wl == pos / NSLOT && wp == SKIP -> goto freeskip
        :: wl == pos / NSLOT && (wp == LEASED || wp == RETRY) -> wl = 0; wp = 0; goto hpass
        :: wl > pos / NSLOT ->
            wl = 0; wp = 0;
#ifdef HEAD_RELOAD
            pos = 0; goto headscan
#else
            goto hpass          /* pos was used and freed already: pass it */
#endif
        :: (wl == pos / NSLOT && (wp == WRITING || wp == FREE)) || wl < pos / NSLOT ->
            /* empty: wait for not-empty */
            wl = 0; wp = 0; pos = 0; i = 0;
#if BROKEN_EC == 1
            goto cprep
#else
            if :: !armed -> goto cprep :: else -> goto csleep fi
#endif
        fi
    }
hpass:
    /* help: CAS(head, pos, pos + 1); next position */
    atomic { if :: head == pos -> head = pos + 1 :: else -> skip fi; pos++; goto look }

lease:
    /* CAS READY(lap) -> LEASED(lap, 1, me) */
    atomic {
        if
        :: slap[i] == wl && sph[i] == READY ->
            sph[i] = LEASED; sdlv[i] = 1; sown[i] = _pid;
            assert(held[i] == 0);               /* unique ownership */
            held[i] = 1; hold[_pid] = i + 1;
            m = smsg[i]; wl = 0; wp = 0;
            assert(mst[m] == M_READY);
            delivered[m]++;                     /* bounded duplicates */
            assert(delivered[m] <= 1 + diedholding[m] + nacks[m])
        :: else -> wl = 0; wp = 0; goto look
        fi
    }
    /* help head, return the message */
    atomic { if :: head == pos -> head = pos + 1 :: else -> skip fi; pos = 0; goto deliver }

freeskip:
    /* CAS SKIP(lap) -> FREE(lap + 1) */
    atomic {
        if
        :: slap[i] == wl && sph[i] == SKIP ->
            slap[i] = wl + 1; sph[i] = FREE; busy--;
            assert(mst[smsg[i]] == M_SKIPPED); mst[smsg[i]] = M_DONE;
            smsg[i] = 0; wl = 0; wp = 0
        :: else -> wl = 0; wp = 0; goto look
        fi
    }
    atomic { if :: head == pos -> head = pos + 1 :: else -> skip fi; pos++ }
    EC_POST(NF, look);

cprep:
    ec_prepare(NE);
#if BROKEN_EC == 1
    /* (broken: no re-check) */
#else
    goto top;                           /* re-check */
#endif
csleep:
    futex_wait(NE, FINISHED); goto top;

deliver:
    /* the application has the message (read header and payload);
     * now ack or nack */
    if
    :: atomic {
        /* ack: CAS LEASED(lap, d, me) -> FREE(lap + 1) */
        assert(sph[i] == LEASED && sown[i] == _pid);    /* never stale here */
        slap[i]++; sph[i] = FREE; sown[i] = NONE; sdlv[i] = 0; busy--;
        held[i] = 0; hold[_pid] = 0;
        assert(mst[m] == M_READY); mst[m] = M_DONE;     /* ack-once */
        delivered[m] = 0; dlqc[m] = 0; nacks[m] = 0; diedholding[m] = 0;
        smsg[i] = 0; i = 0; m = 0; armed = 0
       }
       EC_POST(NF, top)
    :: atomic {
        nnack < MAXNACK -> nnack++;
#ifndef RC_AFTER
        retry_count++
#endif
       }
       /* nack, N1: CAS LEASED(lap, d, me) -> RETRY(lap, d, NONE) */
       atomic {
        assert(sph[i] == LEASED && sown[i] == _pid);
        sph[i] = RETRY; sown[i] = NONE;
        held[i] = 0; hold[_pid] = 0;
        nacks[m]++; m = 0; armed = 0
       }
#ifdef RC_AFTER
       retry_count++;
#endif
       /* B1: set the retry bit */
       atomic { rbit[i] = 1; i = 0 }
       EC_POST(NE, top)
    fi;

done:
    /* drained: every message acked, dead-lettered or never published */
    atomic {
        j = 0;
        do
        :: j < NMSG ->
            assert(mst[j] == M_DONE ||
                   (mst[j] == M_UNSENT && dead[j / NMSGP]));
            j++
        :: else -> j = 0; break
        od;
        fin[_pid] = 1
    }
    } unless {
        kill[_pid] -> d_step { pos = 0; i = 0; wl = 0; wp = 0; wd = 0; m = 0; v = 0; pv = 0; j = 0; rb = 0; armed = 0 }
    }
}

/* ---- repairer (shmqd: repair of a dead token) --------------------------- */

/* always bump the epoch and wake everybody: the dead process may have
 * cleared the waiters bit and died before its FUTEX_WAKE */
#ifdef REPAIR_COND_WAKE
#define REPAIR_WAKE(w, L) EC_POST(w, L)
#else
#define REPAIR_WAKE(w, L) \
    atomic { ec[w] = (ec[w] + 2) % EC_MOD }; \
    futex_wake(w); \
    goto L
#endif

/* The words the repair acts on, WRITING(dead) and LEASED(dead), can be
 * changed by nobody but the repairer (the owner is dead; no lease timeout
 * in the model), so when the repairer reads a slot makes no difference:
 * finding the next such slot and acting on it is one step.  Runs of the
 * repair never overlap (one supervisor), but a supervisor may die in the
 * middle of one and its successor runs the whole repair again. */
#define NEXT_OWNED \
    do \
    :: i < NSLOT && !((sph[i] == WRITING || sph[i] == LEASED) && sown[i] == p) -> i++ \
    :: else -> break \
    od

active proctype Repairer()
{
    byte p, i, pv;

end_idle:
    do
    :: atomic {
           ndead > nrep ->
           p = 0;
           do
           :: p < NPROC && !(dead[p] && !rep[p]) -> p++
           :: else -> break
           od;
           assert(p < NPROC);
           rep[p] = 1; nrep++; i = 0
       }
pass:
       do
       :: atomic {
              NEXT_OWNED;
              if
              :: i == NSLOT -> i = 0; break
              :: i < NSLOT && sph[i] == WRITING ->
                  /* CAS WRITING(lap, dead) -> SKIP(lap) */
                  sph[i] = SKIP; sown[i] = NONE;
                  mst[smsg[i]] = M_SKIPPED; i++; goto pass
              :: i < NSLOT && sph[i] == LEASED ->
#ifdef RC_AFTER
                  /* N1: CAS LEASED(lap, d, dead) -> RETRY(lap, d, NONE) */
                  sph[i] = RETRY; sown[i] = NONE
#else
                  retry_count++         /* first: never undercount */
#endif
              fi
          }
          /* the supervisor may die here; its successor starts over */
          if :: atomic { restarts < MAXRESTART -> restarts++; i = 0; goto pass } :: true -> skip fi;
#ifdef RC_AFTER
          retry_count++;
#else
          /* N1: CAS LEASED(lap, d, dead) -> RETRY(lap, d, NONE) */
          atomic {
              assert(sph[i] == LEASED && sown[i] == p);
              sph[i] = RETRY; sown[i] = NONE
          }
          /* ... or here */
          if :: atomic { restarts < MAXRESTART -> restarts++; i = 0; goto pass } :: true -> skip fi;
#endif
          /* B1: set the retry bit */
          atomic { rbit[i] = 1; i++ }
       od;
#ifndef BIT_NO_REPAIR
       /* Every RETRY slot gets its bit back: one whose owner died between
        * N1 and B1 (a nacking consumer, a supervisor in this very loop)
        * has none, and consumers find RETRY slots only through the bits. */
rbits:
       atomic {
           if
           :: i == NSLOT -> i = 0; goto rwake
           :: else -> skip
           fi;
           if :: sph[i] == RETRY -> skip :: else -> i++; goto rbits fi
       }
       atomic { rbit[i] = 1; i++; goto rbits }
rwake:
#endif
       REPAIR_WAKE(NE, wokene);
wokene:
       REPAIR_WAKE(NF, wokenf);
wokenf:
       /* a restarted supervisor runs the whole repair again */
       if :: atomic { restarts < MAXRESTART -> restarts++; i = 0; goto pass } :: atomic { true -> p = 0 } fi
    od
}

/* ---- crashes ------------------------------------------------------------ */

/* p crashes now: it takes no further step; what the supervisor will learn
 * (dead) and the ghost bookkeeping are done here, in the same step */
/* Producers are alike, and so are consumers: by symmetry the first of a
 * kind to crash may be taken to be the lowest-numbered one, so process p
 * may crash only once p - 1 of its kind has. */
#define KILLABLE(p) (p < NPROC && !kill[p] && !fin[p] && \
                     ((p < NPROD && CRASH_PROD && (p == 0 || kill[p - 1])) || \
                      (p >= NPROD && CRASH_CONS && calive > 1 && (p == NPROD || kill[p - 1]))))
#define KILL(p) atomic { ndead < MAXCRASH && KILLABLE(p) -> \
        kill[p] = 1; dead[p] = 1; ndead++; slp[p] = 0; \
        if :: p < NPROD -> pfin++ :: else -> calive-- fi; \
        if \
        :: hold[p] && p >= NPROD -> diedholding[smsg[hold[p] - 1]]++; held[hold[p] - 1] = 0; hold[p] = 0 \
        :: hold[p] && p < NPROD -> held[hold[p] - 1] = 0; hold[p] = 0 \
        :: else -> skip \
        fi }

active proctype Killer()
{
end_k:
    do
    :: KILL(0)
    :: KILL(1)
#if NPROC > 2
    :: KILL(2)
#endif
#if NPROC > 3
    :: KILL(3)
#endif
#if NPROC > 4
    :: KILL(4)
#endif
#if NPROC > 5
    :: KILL(5)
#endif
#if NPROC > 6
#error "at most 6 producers and consumers"
#endif
    od
}

/* ---- invariant checked in every state ------------------------------------ */

#ifndef RC_AFTER
active proctype Monitor()
{
end_m:
    atomic { !(retry_count >= NRETRY) -> assert(false) }
}
#endif
