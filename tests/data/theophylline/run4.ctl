$PROBLEM THEOPHYLLINE run4: FOCE-I, additive + proportional error
; NONMEM's run4.mod as recorded with its results in Pumas.jl's test suite (test/nlme/theophylline.jl):
; there the data are NONMEM's THEOPP (dose in mg/kg, SC = CL/K/WT) with a SEX item that is 0 for IDs 1-6
; and 1 for IDs 7-12; here the dose is in mg (theo_sd.csv) with S2 = V, which predicts the same, and GRP
; is that item.
$INPUT ID TIME AMT DV MDV EVID CMT WT DOSE=DROP
$DATA ../theo_sd.csv IGNORE=@
$SUBROUTINES ADVAN2 TRANS1
$PK
GRP = 0
IF (ID.GE.7) GRP = 1
KA = (1 - GRP)*THETA(1) + GRP*THETA(4) + ETA(1)
K = THETA(2)
CL = THETA(3)*WT + ETA(2)
V = CL/K
S2 = V
$ERROR
Y = F + F*EPS(2) + EPS(1)
$THETA (0.1, 2.77, 5) (0.0008, 0.0781, 0.5) (0.004, 0.0363, 0.9) (0.1, 1.5, 5)
$OMEGA 5.55 0.515
$SIGMA 0.388 0.3
$ESTIMATION METHOD=COND INTER MAXEVAL=9999
