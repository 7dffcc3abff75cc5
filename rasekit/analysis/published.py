"""Every number the kit compares with, as published, each with its source (docs/method.md §9): the
RaSeRec paper's table, the official code's released logs, DuoRec and SASRec as reported elsewhere, and the
baseline table of the same group's follow-up repository. Nothing here is computed by the kit."""

# Reported targets (test set, full ranking). Paper: hyper.ai card of the RaSeRec paper; official log:
# the released Beauty logs (docs/method.md §9.1-9.2).
PAPER = {("Beauty", "RaSeRec"): {"HR@5": 0.0569, "HR@10": 0.0860, "NDCG@5": 0.0369, "NDCG@10": 0.0463},
         ("Sports_and_Outdoors", "RaSeRec"): {"HR@5": 0.0331, "HR@10": 0.0497, "NDCG@5": 0.0211,
                                              "NDCG@10": 0.0264}}
OFFICIAL_LOG = {("Beauty", "DuoRec"): {"HR@5": 0.0541, "HR@10": 0.0834, "NDCG@5": 0.0337, "NDCG@10": 0.0431},
                ("Beauty", "RaSeRec"): {"HR@5": 0.0567, "HR@10": 0.0863, "NDCG@5": 0.0367,
                                        "NDCG@10": 0.0462}}
# DuoRec as reported elsewhere, to tell a stage-1 gap from a stage-2 one: Beauty, the official checkpoint's
# log; Sports, the DuoRec column of the follow-up RAMRec's baseline table (docs/method.md §9.4; not
# confirmed to equal the RaSeRec paper's own table; a third-party DuoRec-code run has 0.0305 / 0.0473 /
# 0.0189 / 0.0243, §9.5).
REPORTED_DUOREC = {"Beauty": OFFICIAL_LOG[("Beauty", "DuoRec")],
                   "Sports_and_Outdoors": {"HR@5": 0.0315, "HR@10": 0.0479, "NDCG@5": 0.0196,
                                           "NDCG@10": 0.0248}}

# Validation curve of the official DuoRec checkpoint's log on Beauty (docs/method.md §9.3).
OFFICIAL_DUOREC_CURVE = {"epoch": [0, 10, 20, 30, 34, 42, 53],
                         "HR@10": [.0174, .0699, .0935, .1017, .1050, .1051, .1043],
                         "NDCG@10": [.0083, .0360, .0493, .0533, .0551, .0553, .0545],
                         "MRR@10": [.0055, .0257, .0359, .0384, .0398, .0399, .0392]}
# SASRec trained with CE inside the DuoRec code, reported in RuihongQiu/DuoRec issue #3 (docs/method.md §9.4).
SASREC_CE_REPORTED = {"NDCG@5": 0.0326, "NDCG@10": 0.0415}

# The baseline table of the same group's follow-up repository (RAMRec, assets/performance_results.png;
# docs/method.md §9.4): its SASRec column was trained with BPR and one negative. Two cells there repeat
# the HR@5 value and look like typos; they are left out (None).
FOLLOW_UP = {
    "Beauty": {"SASRec (BPR)": (0.0365, 0.0627, 0.0236, 0.0281), "CL4SRec": (0.0401, 0.0683, 0.0223, 0.0317),
               "BERT4Rec": (0.0193, 0.0401, 0.0187, 0.0254), "DuoRec": (0.0546, None, 0.0352, 0.0443),
               "RaSeRec": (0.0569, 0.0865, 0.0369, 0.0465)},
    "Sports_and_Outdoors": {"SASRec (BPR)": (0.0218, 0.0336, 0.0127, 0.0169),
                            "CL4SRec": (0.0227, 0.0374, 0.0129, 0.0184),
                            "BERT4Rec": (0.0176, None, 0.0105, 0.0153),
                            "DuoRec": (0.0315, 0.0479, 0.0196, 0.0248),
                            "RaSeRec": (0.0331, 0.0497, 0.0211, 0.0264)}}
FOLLOW_UP_METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10")
