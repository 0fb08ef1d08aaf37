$PROBLEM theo_sd, nlmixr2's one.compartment model
; nlmixr2's one.compartment example (tka, tcl, tv, eta.ka ~ 0.6, eta.cl ~ 0.3, eta.v ~ 0.1, add.sd 0.7) as a
; control stream: THETA(4) is the additive SD, so $SIGMA is 1 FIX.
$INPUT ID TIME AMT DV MDV EVID CMT WT DOSE=DROP
$DATA ../theo_sd.csv IGNORE=@
$SUBROUTINES ADVAN2 TRANS2
$PK
KA = EXP(THETA(1) + ETA(1))
CL = EXP(THETA(2) + ETA(2))
V = EXP(THETA(3) + ETA(3))
S2 = V
$ERROR
Y = F + THETA(4)*EPS(1)
$THETA 0.45 1 3.45 (0, 0.7)
$OMEGA 0.6 0.3 0.1
$SIGMA 1 FIX
$ESTIMATION METHOD=COND INTER
