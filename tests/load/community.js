// Mixed community traffic (seeds 000 and 002): members join guilds, post in
// forum channels, comment and react, while most requests (80 %) read posts
// with their comments, channel post lists, guilds, member lists and the
// reader's own guild list.
//
// Setup registers MEMBERS accounts; the first GUILDS of them each own a
// guild with a category, a forum and a text channel and SEED_POSTS posts.
// Every member joins guild 0 (the busy one); other guilds are joined during
// the run. Comments and reactions go to guild 0's posts.
//
// Correctness (teardown): the read model agrees with the event log once it
// has caught up. For every guild: member_count and version as the log
// says; for guild 0's forum: the channel list holds exactly the posts the
// log created there; for each seeded post: its comments (ids) and reaction
// counts as the log says, at the log's last sequence; every member's guild
// list holds exactly the guilds the log says they joined. During the run:
// no answer outside the expected ones.
//
// Settings: VUS (50 × SCALE), DURATION (60s), MEMBERS (40 × SCALE, ≥ 4),
// GUILDS (5 × SCALE), SEED_POSTS (3), THINK_SECONDS (0.1), P95_MS (500).

import { sleep } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import {
    adminEvents, allPages, baseOptions, batched, call, envInt, invariantThresholds, must, post, readUntil,
    registerAccounts, req, requireAdmin, runId, scaled, summary, verify, verifying, waitUntil,
} from './lib.js';

const VUS = envInt('VUS', scaled(50));
const DURATION = __ENV.DURATION || '60s';
const MEMBERS = envInt('MEMBERS', scaled(40, 4));
const GUILDS = Math.min(MEMBERS, envInt('GUILDS', scaled(5)));
const SEED_POSTS = envInt('SEED_POSTS', 3);
const THINK = Number(__ENV.THINK_SECONDS || 0.1);
const EMOJI = ['👍', '🎉', 'crab', '🔥'];

const unexpected = new Counter('invariant_community_unexpected_answers');
const reads = new Counter('community_reads');
const writes = new Counter('community_writes');

const CHECKS = ['guilds_match_log', 'channel_list_matches_log', 'posts_match_log', 'member_lists_match_log'];

export const options = Object.assign({}, baseOptions, {
    scenarios: { community: { executor: 'constant-vus', vus: VUS, duration: DURATION } },
    thresholds: Object.assign(invariantThresholds(CHECKS), {
        invariant_community_unexpected_answers: ['count==0'],
        http_req_failed: ['rate<0.01'],
        http_req_duration: [`p(95)<${envInt('P95_MS', 500)}`],
    }),
});

export function setup() {
    requireAdmin();
    const run = runId();
    const members = registerAccounts(`member-${run}`, 0, MEMBERS);
    const guilds = [];
    for (let g = 0; g < GUILDS; g++) {
        const owner = members[g];
        const gid = must(post('/v1/guilds', { name: `guild ${g} ${run}` }, owner.token), 201, 'create a guild').guild_id;
        const cat = must(post(`/v1/guilds/${gid}/categories`, { name: 'talk' }, owner.token), 201, 'category').category_id;
        const forum = must(post(`/v1/guilds/${gid}/channels`, { name: 'forum', kind: 'forum', category_id: cat }, owner.token),
            201, 'forum channel').channel_id;
        const text = must(post(`/v1/guilds/${gid}/channels`, { name: 'chat', kind: 'text', category_id: cat }, owner.token),
            201, 'text channel').channel_id;
        const posts = [];
        for (let p = 0; p < SEED_POSTS; p++) {
            posts.push(must(post(`/v1/channels/${forum}/posts`, { title: `seed ${p}`, content: `seed post ${p} of guild ${g}` },
                owner.token), 201, 'seed post').post_id);
        }
        guilds.push({ id: gid, owner: g, forum, text, posts });
    }
    // everyone joins guild 0
    const joins = batched(members.slice(1).map((m) => req('POST', `/v1/guilds/${guilds[0].id}/members`, null, m.token)), 16);
    joins.forEach((r) => {
        if (r.status !== 201) throw new Error(`join guild 0: ${r.status} ${r.body}`);
    });
    // the run reads these from its first second: wait until they are projected
    for (const g of guilds) {
        for (const pid of g.posts) {
            const r = readUntil(`/v1/posts/${pid}`, members[0].token, () => true, { minVersion: 1, timeout: 60 });
            if (!r.ok) throw new Error(`seed post ${pid} was not projected: ${r.answer.status} ${r.answer.res.body}`);
        }
    }
    const joined = readUntil(`/v1/guilds/${guilds[0].id}`, members[0].token, (b) => b.member_count === MEMBERS, { timeout: 60 });
    if (!joined.ok) throw new Error(`guild 0 never showed ${MEMBERS} members: ${joined.answer.res.body}`);
    return { run, members, guilds };
}

function pick(list) {
    return list[Math.floor(Math.random() * list.length)];
}

// answers a step may give besides 2xx
const EXPECTED = {
    join: [201, 409], // already_member
    post: [201, 403], // not a member of that guild (yet)
    comment: [201],
    react: [200],
    read: [200],
};

function step(kind, method, path, body, token, name) {
    const a = call(method, path, body, token, { name, expect: EXPECTED[kind] });
    if (!EXPECTED[kind].includes(a.status)) {
        unexpected.add(1, { step: kind });
        console.error(`${name}: ${a.status} ${a.res.body}`);
    }
    (kind === 'read' ? reads : writes).add(1);
    return a;
}

let myPosts = [];

export default function (data) {
    const me = data.members[(exec.vu.idInTest - 1) % data.members.length];
    const g0 = data.guilds[0];
    const g = pick(data.guilds);
    const r = Math.random();
    if (r < 0.25) {
        // a post this VU wrote may not be projected yet: read your writes
        const pid = pick(g0.posts.concat(myPosts));
        const own = myPosts.includes(pid) ? '?min_version=1' : '';
        step('read', 'GET', `/v1/posts/${pid}${own}`, null, me.token, 'GET /v1/posts/{id}');
    } else if (r < 0.45) {
        step('read', 'GET', `/v1/channels/${pick([g0, g]).forum}/posts`, null, me.token, 'GET /v1/channels/{id}/posts');
    } else if (r < 0.55) {
        step('read', 'GET', `/v1/guilds/${g.id}`, null, me.token, 'GET /v1/guilds/{id}');
    } else if (r < 0.70) {
        step('read', 'GET', '/v1/me/guilds', null, me.token, 'GET /v1/me/guilds');
    } else if (r < 0.80) {
        step('read', 'GET', `/v1/guilds/${g.id}/members`, null, me.token, 'GET /v1/guilds/{id}/members');
    } else if (r < 0.83) {
        step('join', 'POST', `/v1/guilds/${g.id}/members`, null, me.token, 'POST /v1/guilds/{id}/members');
    } else if (r < 0.87) {
        const target = Math.random() < 0.7 ? g0 : g;
        const a = step('post', 'POST', `/v1/channels/${target.forum}/posts`,
            { title: `post by ${me.email}`, content: `written at ${new Date().toISOString()}` }, me.token,
            'POST /v1/channels/{id}/posts');
        if (a.status === 201 && target === g0) myPosts.push(a.body.post_id);
    } else if (r < 0.94) {
        step('comment', 'POST', `/v1/posts/${pick(g0.posts.concat(myPosts))}/comments`,
            { content: `a comment from ${me.email}` }, me.token, 'POST /v1/posts/{id}/comments');
    } else {
        const emoji = encodeURIComponent(pick(EMOJI));
        step('react', 'PUT', `/v1/posts/${pick(g0.posts.concat(myPosts))}/reactions/${emoji}`, null, me.token,
            'PUT /v1/posts/{id}/reactions/{emoji}');
    }
    if (THINK > 0) sleep(THINK);
}

function lastSequence(events) {
    return events.reduce((m, e) => Math.max(m, e.sequence), 0);
}

export function teardown(data) {
    const owner = data.members[0].token;
    const joined = {}; // user id -> set of guild ids, from the log
    verifying('guilds_match_log', () => {
        const wrong = [];
        for (const g of data.guilds) {
            const events = adminEvents('guild', g.id);
            const members = new Set([data.members[g.owner].id]);
            for (const e of events) {
                if (e.event_type === 'MemberJoined') members.add(e.payload.user_id);
                if (e.event_type === 'MemberLeft') members.delete(e.payload.user_id);
            }
            for (const u of members) (joined[u] = joined[u] || new Set()).add(g.id);
            const v = lastSequence(events);
            const r = readUntil(`/v1/guilds/${g.id}`, owner, (b) => b.version >= v, { minVersion: v, timeout: 60 });
            const b = r.answer.body || {};
            if (!r.ok || b.version !== v || b.member_count !== members.size) {
                wrong.push(`guild ${g.id}: log says ${members.size} members at v${v}, read ${b.member_count} at v${b.version}`);
            }
        }
        return verify('guilds_match_log', wrong.length === 0, wrong.join('; ') || `${data.guilds.length} guilds`);
    });
    const postEvents = adminEvents('post');
    verifying('channel_list_matches_log', () => {
        const g0 = data.guilds[0];
        const created = new Set(postEvents
            .filter((e) => e.event_type === 'PostCreated' && e.payload.channel_id === g0.forum)
            .map((e) => e.aggregate_id));
        let listed = new Set();
        const ok = waitUntil(() => {
            listed = new Set(allPages(`/v1/channels/${g0.forum}/posts`, owner).map((p) => p.post_id));
            return listed.size === created.size && [...created].every((p) => listed.has(p));
        }, 60, 0.5);
        return verify('channel_list_matches_log', !!ok, `log created ${created.size} posts in guild 0's forum, the list shows ${listed.size}`);
    });
    verifying('posts_match_log', () => {
        const wrong = [];
        const seeded = data.guilds[0].posts;
        for (const pid of seeded) {
            const events = postEvents.filter((e) => e.aggregate_id === pid);
            const comments = new Set();
            const reactions = {};
            for (const e of events) {
                if (e.event_type === 'CommentAdded') comments.add(e.payload.comment_id);
                if (e.event_type === 'CommentDeleted') comments.delete(e.payload.comment_id);
                if (e.event_type === 'ReactionAdded') (reactions[e.payload.emoji] = reactions[e.payload.emoji] || new Set()).add(e.payload.user_id);
                if (e.event_type === 'ReactionRemoved' && reactions[e.payload.emoji]) reactions[e.payload.emoji].delete(e.payload.user_id);
            }
            const v = lastSequence(events);
            const r = readUntil(`/v1/posts/${pid}`, owner, (b) => b.version >= v, { minVersion: v, timeout: 60 });
            const b = r.answer.body || {};
            const readIds = new Set((b.comments || []).map((c) => c.comment_id));
            const sameComments = readIds.size === comments.size && [...comments].every((c) => readIds.has(c));
            const expectedReactions = {};
            for (const [emoji, us] of Object.entries(reactions)) if (us.size > 0) expectedReactions[emoji] = us.size;
            const readReactions = {};
            for (const [emoji, n] of Object.entries(b.reactions || {})) if (n > 0) readReactions[emoji] = n;
            const sameReactions = JSON.stringify(Object.entries(expectedReactions).sort())
                === JSON.stringify(Object.entries(readReactions).sort());
            if (!r.ok || b.version !== v || !sameComments || !sameReactions) {
                wrong.push(`post ${pid}: log v${v} ${comments.size} comments ${JSON.stringify(expectedReactions)}; `
                    + `read v${b.version} ${readIds.size} comments ${JSON.stringify(readReactions)}`);
            }
        }
        return verify('posts_match_log', wrong.length === 0, wrong.join('; ') || `${seeded.length} posts`);
    });
    verifying('member_lists_match_log', () => {
        const wrong = [];
        const deadline = Date.now() + 60000; // for all the lists together
        for (const m of data.members) {
            const want = joined[m.id] || new Set();
            let have = new Set();
            const ok = waitUntil(() => {
                have = new Set(allPages('/v1/me/guilds', m.token).map((g) => g.guild_id));
                return have.size === want.size && [...want].every((g) => have.has(g));
            }, Math.max(0, (deadline - Date.now()) / 1000), 0.5);
            if (!ok) wrong.push(`${m.email}: log says ${want.size} guilds, list shows ${have.size}`);
        }
        return verify('member_lists_match_log', wrong.length === 0, wrong.slice(0, 5).join('; ') || `${data.members.length} members`);
    });
}

export const handleSummary = summary('community', `${VUS} VUs for ${DURATION}: 80 % reads, joins, posts, comments, reactions`);
