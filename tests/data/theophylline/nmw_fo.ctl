$PROBLEM THEOPHYLLINE ORAL (nmw): 320 mg to everyone, OMEGA BLOCK(3), combined error
; Kim, Yim, Bae. Transl Clin Pharmacol 2015;23:1-7 (FO) and the nmw R package's vignette: their $PRED
; model gives every subject 320 mg; F1 = 320/(DOSE*WT) does the same through the dose record.
$INPUT ID TIME AMT DV MDV EVID CMT WT DOSE
$DATA ../theo_sd.csv IGNORE=@
$SUBROUTINES ADVAN2 TRANS1
$PK
F1 = 320/(DOSE*WT)
KA = THETA(1)*EXP(ETA(1))
V = THETA(2)*EXP(ETA(2))
K = THETA(3)*EXP(ETA(3))
S2 = V
$ERROR
Y = F + F*EPS(1) + EPS(2)
$THETA (0, 2) (0, 50) (0, 0.1)
$OMEGA BLOCK(3) 0.2 0.1 0.2 0.1 0.1 0.2
$SIGMA 0.1 0.1
$ESTIMATION METHOD=ZERO MAXEVAL=9999 POSTHOC
