"""The translation table for ui/i18n/core.py, the arena part (Compare's sides, votes and leaderboard; the Data
tab's dataset from votes): key -> (English, Simplified Chinese). Errors are in ui/i18n/strings_errors.py."""

from __future__ import annotations

STRINGS: dict[str, tuple[str, str]] = {
    "model_c": ("Model C", "模型 C"),
    "model_d": ("Model D", "模型 D"),
    "arena_sides": ("Models side by side", "并排对比的模型数"),
    "arena_n_sides": ("{count} models", "{count} 个模型"),
    "arena_blind": ("Blind (arena)", "盲测（竞技场）"),
    "arena_blind_info": ("sides A-D: the picked models are shuffled over them each round and named after your vote",
                         "A-D 各方：每轮将所选模型随机分配到各方，投票后揭晓"),
    "arena_new_round": ("New round", "新一轮"),
    "arena_stop_all": ("Stop all", "全部停止"),
    "arena_side_title": ("**{side}**", "**{side}**"),
    "arena_stop_side": ("Stop {side}", "停止 {side}"),
    "arena_vote_better": ("{side} is better", "{side} 更好"),
    "arena_vote_best": ("{side} is best", "{side} 最好"),
    "arena_vote_tie": ("Tie", "平局"),
    "arena_vote_both_bad": ("Both bad", "都不好"),
    "arena_vote_all_bad": ("All bad", "全都不好"),
    "arena_said_best": ("{side} is best", "{side} 最好"),
    "arena_said_tie": ("a tie", "平局"),
    "arena_said_bad": ("both bad", "都不好"),
    "arena_said_all_bad": ("all bad", "全都不好"),
    "arena_revealed": ("Your vote: {vote}. The models: {names}. Send a message to start a new round.",
                       "您的投票：{vote}。模型：{names}。发送一条消息即可开始新一轮。"),
    "arena_leaderboard": ("Leaderboard", "排行榜"),
    "arena_leaderboard_intro": ("Bradley-Terry ratings from the arena's votes (a tie or \"bad\" counts half a win "
                                "each), with 95% bootstrap intervals: 1000 is the middle, and 400 points apart "
                                "means 10:1 odds.",
                                "根据竞技场投票拟合的 Bradley-Terry 评分（平局或“不好”各算半场胜利），附 95% "
                                "自助法置信区间：1000 为中间值，相差 400 分表示 10:1 的胜率比。"),
    "arena_scope": ("Votes", "投票范围"),
    "arena_scope_mine": ("Mine", "我的"),
    "arena_scope_everyone": ("Everyone's (admin)", "所有人的（管理员）"),
    "arena_csv": ("Download CSV", "下载 CSV"),
    "arena_no_votes": ("No votes yet: vote on a round above.", "还没有投票：请在上方的对比轮次中投票。"),
    "arena_totals": ("{votes:,} vote(s), {models} model(s), {users} user(s).",
                     "{votes:,} 票，{models} 个模型，{users} 位用户。"),
    "arena_col_rank": ("rank", "名次"),
    "arena_col_model": ("model", "模型"),
    "arena_col_rating": ("rating", "评分"),
    "arena_col_ci_low": ("95% low", "95% 下限"),
    "arena_col_ci_high": ("95% high", "95% 上限"),
    "arena_col_votes": ("votes", "票数"),
    "arena_col_wins": ("wins", "胜"),
    "arena_col_ties": ("ties", "平"),
    "arena_col_losses": ("losses", "负"),
    "data_kind_arena": ("Preference (chosen / rejected) from arena votes", "由竞技场投票生成偏好（选中 / 拒绝）"),
}
